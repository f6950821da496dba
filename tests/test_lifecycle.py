"""new-env, promote, upgrade and remove-env on real Git history: a scratch copy of the repository
made a Git repository, each command run through the CLI, the result compiled by the command and
checked as a reviewer would (target file, compiled/, validate, the commit, the DAG repository).
Refusals must leave the repository as it was."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from airflow_gitops.venvs import cache_dir
from conftest import REPO, copy_repo

pytestmark = pytest.mark.slow  # each command compiles and validates (Airflow checks the result)

CLI = str(Path(sys.executable).with_name("airflow-gitops"))
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
# The scratch copies share this checkout's virtualenvs (Airflow, checkov) rather than build their own.
ENV = {**os.environ, **GIT_ENV, "AIRFLOW_GITOPS_CACHE": str(cache_dir(REPO))}


def git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr
    return result.stdout


def cli(root: Path, *args: str, code: int = 0) -> str:
    result = subprocess.run([CLI, *args], cwd=root, capture_output=True, text=True, env=ENV)
    assert result.returncode == code, (result.stdout + result.stderr)[-4000:]
    return result.stdout + result.stderr


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file outside .git, to prove a refusal changed nothing."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".git" not in p.relative_to(root).parts}


def set_in(path: Path, text_old: str, text_new: str) -> None:
    text = path.read_text()
    assert text_old in text, f"{path}: no {text_old!r}"
    path.write_text(text.replace(text_old, text_new, 1))


@pytest.fixture(scope="module")
def base_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_repo(tmp_path_factory.mktemp("lifecycle") / "repo")
    shutil.copytree(REPO / "dags", root / "dags")
    shutil.copy2(REPO / ".checkov.yaml", root / ".checkov.yaml")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    return root


@pytest.fixture
def repo(base_repo: Path, tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(base_repo, root, symlinks=True)
    return root


def commit_all(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)
    return git(root, "rev-parse", "HEAD").strip()


# --- new-env ------------------------------------------------------------------------------------


def test_new_env_copies_staging_with_its_own_names_and_passes_validate(repo: Path) -> None:
    out = cli(repo, "new-env", "qa", "--from", "staging")
    assert "parameters.airflow.api_server.base_url: https://airflow-staging.acme.internal -> https://airflow-qa.acme.internal" in out
    assert "parameters.airflow.dags.git_sync.ref: staging -> qa" in out
    target = (repo / "inventory/targets/qa.yml").read_text()
    staging = (repo / "inventory/targets/staging.yml").read_text()
    # The same classes (staging's profile too), comments and layout; only the names differ.
    assert target.splitlines()[2:] == [line if "profiles.staging" in line else line.replace("staging", "qa")
                                       for line in staging.splitlines()[1:]]
    assert target.splitlines()[1] == "# Qa: external database, KubernetesExecutor, DAGs from the qa branch."
    assert target.startswith("# Made from staging by `airflow-gitops new-env qa --from staging`.\n")
    # Checklist of what must exist outside Git, from the compiled objects.
    assert "[ ] secret store ClusterSecretStore/airflow (External Secrets Operator) holds the keys: airflow/qa/admin-password, " \
        "airflow/qa/api-secret-key, airflow/qa/fernet-key, airflow/qa/jwt-secret" in out
    assert "[ ] Secret airflow-metadata-db in namespace airflow-qa, created outside Git, with the key connection" in out
    assert "has the branch qa (published with `airflow-gitops sync-dags --target qa`)" in out
    namespace = yaml.safe_load((repo / "compiled/qa/manifests/base/namespace-airflow-qa.yaml").read_text())
    assert namespace["metadata"]["name"] == "airflow-qa"
    assert "airflow-qa" in (repo / "compiled/bootstrap/argocd/appproject-airflow.yaml").read_text()
    # What the command wrote is what a compile gives (it passed every check before it was written).
    assert "every check passed" in cli(repo, "validate", "--check", "up-to-date", "--check", "inventory", "--quiet")


def test_new_env_with_kapitan_refs_generates_its_refs_once(repo: Path) -> None:
    out = cli(repo, "new-env", "sandbox", "--from", "dev")
    refs = sorted(p.name for p in (repo / "kapitan/refs/targets/sandbox").iterdir())
    assert refs == sorted(p.name for p in (repo / "kapitan/refs/targets/dev").iterdir())
    assert "[ ] the refs under kapitan/refs/targets/sandbox/ are committed" in out
    assert (repo / "kapitan/refs/targets/sandbox/fernet_key").read_bytes() != (repo / "kapitan/refs/targets/dev/fernet_key").read_bytes()
    assert "every check passed" in cli(repo, "validate", "--check", "up-to-date", "--quiet")


def test_new_env_refuses_a_url_it_would_share_and_bad_names_changing_nothing(repo: Path) -> None:
    before = snapshot(repo)
    out = cli(repo, "new-env", "prod-eu", "--from", "prod", code=1)
    assert "inventory/targets/prod.yml: parameters.airflow.api_server.base_url is 'https://airflow.acme.internal', " \
        "which prod-eu would share with prod: give prod-eu its own with --set parameters.airflow.api_server.base_url=<value>" in out
    assert "'QA' is not a valid environment name" in cli(repo, "new-env", "QA", "--from", "staging", code=1)
    assert "staging: inventory/targets/staging.yml already exists" in cli(repo, "new-env", "staging", "--from", "dev", code=1)
    assert "--from stagin: no environment inventory/targets/stagin.yml" in cli(repo, "new-env", "qa", "--from", "stagin", code=1)
    assert "--set api_server.base_url=x: expected parameters.airflow.<key>=<value>" in \
        cli(repo, "new-env", "qa", "--from", "staging", "--set", "api_server.base_url=x", code=1)
    # A value the compile refuses: nothing is written either.
    out = cli(repo, "new-env", "qa", "--from", "staging", "--set", "parameters.airflow.executor=Local", code=1)
    assert "the changed inventory does not compile; nothing was written" in out and "inventory/targets/qa.yml" in out
    assert snapshot(repo) == before


def test_new_env_dry_run_shows_the_file_and_the_diff_and_writes_nothing(repo: Path) -> None:
    before = snapshot(repo)
    out = cli(repo, "new-env", "qa", "--from", "staging", "--dry-run")
    assert "+++ b/inventory/targets/qa.yml" in out and "+        ref: qa" in out
    assert "qa: environment added" in out and "+ Namespace airflow-qa" in out
    assert "dry run: nothing written" in out
    assert snapshot(repo) == before


# --- promote ------------------------------------------------------------------------------------


@pytest.fixture
def dag_repository(repo: Path, tmp_path: Path) -> Path:
    """A bare DAG repository the inventory points at: staging's branch one commit ahead of prod's."""
    bare = tmp_path / "dags.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    work = tmp_path / "dags-work"
    git(tmp_path, "clone", "-q", str(bare), str(work))
    (work / "dags").mkdir()
    (work / "dags/a.py").write_text("# a\n")
    commit_all(work, "a")
    git(work, "push", "-q", "origin", "HEAD:refs/heads/prod", "HEAD:refs/heads/main")
    (work / "dags/b.py").write_text("# b\n")
    commit_all(work, "b")
    git(work, "push", "-q", "origin", "HEAD:refs/heads/staging")
    set_in(repo / "inventory/classes/dag-repository.yml", "repo: git@github.com:example/airflow-dags.git", f"repo: file://{bare}")
    set_in(repo / "inventory/classes/dag-repository.yml", "auth: ssh", "auth: none")
    set_in(repo / "inventory/classes/dag-repository.yml", "credentials_secret: airflow-git-sync-ssh", 'credentials_secret: ""')
    # prod runs an older release than staging tested.
    set_in(repo / "inventory/targets/prod.yml", "  airflow:\n", "  airflow:\n    version: 3.1.8\n    image:\n      tag: 3.1.8\n")
    cli(repo, "compile")
    commit_all(repo, "DAGs from a scratch repository; prod on 3.1.8")
    return bare


def ls_remote(bare: Path, ref: str) -> str:
    return git(bare, "rev-parse", ref).strip()


def test_promote_staging_to_prod_carries_the_release_and_dags_in_a_commit_with_provenance(repo: Path, dag_repository: Path) -> None:
    tested_at = git(repo, "rev-parse", "HEAD").strip()
    staging_dags = ls_remote(dag_repository, "refs/heads/staging")
    out = cli(repo, "promote", "--from", "staging", "--to", "prod")
    assert "  version: 3.1.8 -> 3.3.2\n  image.tag: 3.1.8 -> 3.3.2\n" in out
    assert "the migration Job airflow-db-migrate-" in out and "3.1.8 -> 3.3.2" in out
    assert "staging is compiled, up to date and valid; prod compiles and passes validate" in out
    # The commit: the target file and compiled/, with where the release came from.
    message = git(repo, "log", "-1", "--format=%B")
    assert message.startswith("promote staging -> prod: version 3.3.2, image.tag 3.3.2\n")
    assert f"Promoted-from: staging\nPromoted-from-commit: {tested_at}\nPromoted-dags: {staging_dags}" in message
    assert git(repo, "rev-parse", "HEAD~1").strip() == tested_at
    changed = git(repo, "show", "--name-only", "--format=", "HEAD").split()
    assert "inventory/targets/prod.yml" in changed and all(p == "inventory/targets/prod.yml" or p.startswith("compiled/prod/") for p in changed)
    assert git(repo, "status", "--porcelain") == ""
    prod = (repo / "inventory/targets/prod.yml").read_text()
    assert "    version: 3.3.2\n    image:\n      tag: 3.3.2\n" in prod and "# Receives staging's release" in prod
    # The DAG branch moved to exactly what staging runs.
    assert ls_remote(dag_repository, "refs/heads/prod") == staging_dags
    assert "every check passed" in cli(repo, "validate", "--check", "up-to-date", "--quiet")
    # Again: nothing left to promote.
    assert "prod already runs staging's release: nothing to promote" in cli(repo, "promote", "--from", "staging", "--to", "prod")


def test_promote_refuses_out_of_order_uncommitted_stale_and_downgrades(repo: Path, dag_repository: Path) -> None:
    prod_dags = ls_remote(dag_repository, "refs/heads/prod")
    out = cli(repo, "promote", "--from", "dev", "--to", "prod", code=1)
    assert "inventory/targets/prod.yml: parameters.airflow.promotion.from is staging: prod receives its release from staging, " \
        "not from dev (promoting out of order is refused)" in out
    assert "inventory/targets/staging.yml: parameters.airflow.promotion.from is empty" in \
        cli(repo, "promote", "--from", "prod", "--to", "staging", code=1)
    # Uncommitted change to the source: the provenance could not name what was tested.
    set_in(repo / "inventory/targets/staging.yml", "ref: staging", "ref: staging  # edited")
    assert "uncommitted changes to the inventory or compiled/staging (inventory/targets/staging.yml)" in \
        cli(repo, "promote", "--from", "staging", "--to", "prod", code=1)
    git(repo, "checkout", "-q", "--", "inventory/targets/staging.yml")
    # compiled/staging committed but not what its inventory compiles to.
    set_in(repo / "compiled/staging/manifests/base/configmap-airflow-config.yaml", "parallelism = 32", "parallelism = 33")
    commit_all(repo, "hand edit")
    before = snapshot(repo)
    assert "compiled/staging is not what its inventory compiles to" in cli(repo, "promote", "--from", "staging", "--to", "prod", code=1)
    assert snapshot(repo) == before
    git(repo, "revert", "--no-edit", "HEAD")
    # A source older than the destination.
    set_in(repo / "inventory/targets/staging.yml", "  airflow:\n", "  airflow:\n    version: 3.1.7\n    image:\n      tag: 3.1.7\n")
    commit_all(repo, "staging older")
    assert "staging runs Airflow 3.1.7 and prod 3.1.8: promoting would downgrade prod" in \
        cli(repo, "promote", "--from", "staging", "--to", "prod", code=1)
    assert ls_remote(dag_repository, "refs/heads/prod") == prod_dags


def test_promote_dry_run_with_a_named_config_key_moves_no_ref_and_writes_nothing(repo: Path, dag_repository: Path) -> None:
    set_in(repo / "inventory/targets/staging.yml", "  airflow:\n", "  airflow:\n    config:\n      core:\n        parallelism: 24\n")
    cli(repo, "compile")
    commit_all(repo, "staging: 24 task slots")
    head, prod_dags, before = git(repo, "rev-parse", "HEAD"), ls_remote(dag_repository, "refs/heads/prod"), snapshot(repo)
    out = cli(repo, "promote", "--from", "staging", "--to", "prod", "--key", "config.core.parallelism", "--dry-run")
    assert "  DAGs: branch prod " in out and "(what staging runs on staging)" in out
    assert "  config.core.parallelism: 32 -> 24\n" in out and "[core] parallelism: 32 -> 24" in out
    assert "+    version: 3.3.2" in out and "dry run: nothing written" in out
    assert "--key config.core.paralelism: staging has no parameters.airflow.config.core.paralelism" in \
        cli(repo, "promote", "--from", "staging", "--to", "prod", "--key", "config.core.paralelism", code=1)
    assert git(repo, "rev-parse", "HEAD") == head and snapshot(repo) == before
    assert ls_remote(dag_repository, "refs/heads/prod") == prod_dags


# --- upgrade ------------------------------------------------------------------------------------


def on_3_1_8(repo: Path, extra: str = "") -> None:
    """dev on Airflow 3.1.8 (its option list recorded from real Airflow 3.1.8), committed."""
    set_in(repo / "inventory/targets/dev.yml", "  airflow:\n", f"  airflow:\n    version: 3.1.8\n    image:\n      tag: 3.1.8\n{extra}")
    cli(repo, "compile")
    commit_all(repo, "dev on 3.1.8")


def test_upgrade_records_the_new_option_list_reports_renamed_options_and_moves_version_and_tag(repo: Path) -> None:
    on_3_1_8(repo, "    config:\n      scheduler:\n        running_metrics_interval: 30\n")
    options = repo / "kapitan/schemas/airflow-config-options/3.3.2.json"
    retired = repo / "kapitan/schemas/airflow-config-options/3.3.2.retired.json"
    options.unlink()  # upgrade generates both with Airflow 3.3.2 itself
    retired.unlink()
    commit_all(repo, "no option list for 3.3.2")
    before = snapshot(repo)
    out = cli(repo, "upgrade", "--target", "dev", "--to", "3.3.2", code=1)
    assert "Airflow 3.3.2 does not read options dev sets; change them first (nothing was written):\n" \
        "  inventory/targets/dev.yml: parameters.airflow.config.scheduler.running_metrics_interval: renamed in Airflow 3.2.0 to " \
        "[scheduler] ti_metrics_interval: set parameters.airflow.config.scheduler.ti_metrics_interval instead" in out
    assert snapshot(repo) == before
    set_in(repo / "inventory/targets/dev.yml", "running_metrics_interval: 30", "ti_metrics_interval: 30")
    commit_all(repo, "renamed option")  # 3.1.8 lacks it: only the upgrade's own compile may check it
    out = cli(repo, "upgrade", "--target", "dev", "--to", "3.3.2")
    assert "upgrade dev: Airflow 3.1.8 -> 3.3.2, image tag 3.1.8 -> 3.3.2" in out
    assert "recorded the option list of Airflow 3.3.2 (generated with Airflow 3.3.2)" in out
    assert "the migration Job airflow-db-migrate-" in out and "Airflow 3.1.8 -> 3.3.2" in out
    # The generated list is exactly the one committed to this repository.
    assert options.read_bytes() == (REPO / "kapitan/schemas/airflow-config-options/3.3.2.json").read_bytes()
    assert retired.read_bytes() == (REPO / "kapitan/schemas/airflow-config-options/3.3.2.retired.json").read_bytes()
    dev = yaml.safe_load((repo / "inventory/targets/dev.yml").read_text())["parameters"]["airflow"]
    assert dev["version"] == "3.3.2" and dev["image"]["tag"] == "3.3.2"
    assert "# Development: bundled PostgreSQL" in (repo / "inventory/targets/dev.yml").read_text()
    assert "every check passed" in cli(repo, "validate", "--check", "up-to-date", "--quiet")


def test_upgrade_refuses_a_downgrade_and_a_promoted_environment(repo: Path) -> None:
    before = snapshot(repo)
    out = cli(repo, "upgrade", "--target", "dev", "--to", "3.1.8", code=1)
    assert "dev runs Airflow 3.3.2: 3.1.8 would be a downgrade, which is refused. Airflow migrates its metadata database up only" in out
    assert "prod receives its release from staging; upgrade staging, then `airflow-gitops promote --from staging --to prod`" in \
        cli(repo, "upgrade", "--target", "prod", "--to", "3.3.3", code=1)
    assert "--to: '3.3' is not an Airflow release version" in cli(repo, "upgrade", "--target", "dev", "--to", "3.3", code=1)
    assert snapshot(repo) == before


def test_upgrade_dry_run_shows_the_migration_and_writes_nothing(repo: Path) -> None:
    on_3_1_8(repo)
    before = snapshot(repo)
    out = cli(repo, "upgrade", "--target", "dev", "--to", "3.3.2", "--dry-run")
    assert "-    version: 3.1.8\n+    version: 3.3.2" in out and "dry run: nothing written" in out
    assert snapshot(repo) == before


# --- remove-env ---------------------------------------------------------------------------------


def test_remove_env_removes_target_tree_and_refs_and_says_what_stays(repo: Path) -> None:
    out = cli(repo, "remove-env", "dev")
    assert not (repo / "inventory/targets/dev.yml").exists()
    assert not (repo / "compiled/dev").exists() and not (repo / "kapitan/refs/targets/dev").exists()
    assert "airflow-dev" not in (repo / "compiled/bootstrap/argocd/appproject-airflow.yaml").read_text()
    assert "DANGER data loss: StatefulSet airflow-postgres removed, and with it the bundled database" in out
    assert "the claims of StatefulSet airflow-postgres (data-airflow-postgres-0; retained): " \
        "kubectl -n airflow-dev delete pvc data-airflow-postgres-0" in out
    assert "the namespace airflow-dev, with whatever is left in it: kubectl delete namespace airflow-dev" in out
    assert "DAG branch main" not in out  # the repository's main line is not dev's to delete
    assert "every check passed" in cli(repo, "validate", "--check", "up-to-date", "--check", "kustomize", "--quiet")


def test_remove_env_refuses_an_environment_another_promotes_from(repo: Path) -> None:
    before = snapshot(repo)
    out = cli(repo, "remove-env", "staging", code=1)
    assert "inventory/targets/prod.yml: parameters.airflow.promotion.from is staging: prod receives from staging" in out
    assert "bootstrap is not an environment" in cli(repo, "remove-env", "bootstrap", code=1)
    out = cli(repo, "remove-env", "prod", "--dry-run")
    assert "removed inventory/targets/prod.yml" in out and "dry run: nothing written" in out
    assert "PersistentVolumeClaim airflow-logs in airflow-prod (its data): kubectl -n airflow-prod delete persistentvolumeclaim airflow-logs" in out
    assert "the keys in ClusterSecretStore/airflow: airflow/prod/admin-password" in out
    assert snapshot(repo) == before


def test_promotion_source_must_be_another_environment_and_match_the_dags_source() -> None:
    from airflow_gitops.errors import InventoryError
    from airflow_gitops.inventory import promotion_source

    assert promotion_source(REPO, "prod", {"promotion": {"from": "staging"}, "dags": {"git_sync": {"promoted_from": "staging"}}}) == "staging"
    with pytest.raises(InventoryError, match=r"inventory/targets/prod.yml: parameters.airflow.promotion.from: 'stagin' is not "
                                             r"an environment \(did you mean staging\?"):
        promotion_source(REPO, "prod", {"promotion": {"from": "stagin"}})
    with pytest.raises(InventoryError, match="'prod' is this environment itself"):
        promotion_source(REPO, "prod", {"promotion": {"from": "prod"}})
    with pytest.raises(InventoryError, match="but parameters.airflow.dags.git_sync.promoted_from is 'dev': a release and its DAGs"):
        promotion_source(REPO, "prod", {"promotion": {"from": "staging"}, "dags": {"git_sync": {"promoted_from": "dev"}}})
