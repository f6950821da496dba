"""`airflow-gitops diff` on real Git history: a scratch copy of the repository made a Git repository
(one per module), then one branch per change, made the way a pull request is (an inventory edit and
a compile, or a hand edit of compiled/ where no inventory knob reaches the field), compared with
--base main --head BRANCH. Each test pins the line a reviewer reads."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conftest import compile_in, copy_repo

CLI = str(Path(sys.executable).with_name("airflow-gitops"))
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
MIGRATE_JOB = re.compile(r"airflow-db-migrate-[0-9a-f]{10}")


def git(root: Path, *args: str) -> str:
    import os

    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, env={**os.environ, **GIT_ENV})
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_repo(tmp_path_factory.mktemp("diff") / "repo")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    return root


def branch(root: Path, name: str, edit: Callable[[Path], None], *targets: str, compile: bool = True) -> str:
    """A branch from main with `edit` applied and the targets recompiled (all if none), committed."""
    git(root, "checkout", "-q", "-f", "main")
    git(root, "clean", "-qfd")
    git(root, "checkout", "-q", "-b", name)
    edit(root)
    if compile:
        result = compile_in(root, *(a for t in targets for a in ("-t", t)))
        assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
    git(root, "add", "-A")
    git(root, "commit", "-qm", name)
    git(root, "checkout", "-q", "main")
    return name


def diff(root: Path, *args: str, code: int = 0) -> str:
    result = subprocess.run([CLI, "diff", *args], cwd=root, capture_output=True, text=True)
    assert result.returncode == code, result.stdout + result.stderr
    return result.stdout + result.stderr


def append(path: str, text: str) -> Callable[[Path], None]:
    return lambda root: (root / path).write_text((root / path).read_text() + text)


def replace(path: str, old: str, new: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        text = (root / path).read_text()
        assert old in text
        (root / path).write_text(text.replace(old, new))
    return edit


def edit_object(path: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        obj = yaml.safe_load((root / path).read_text())
        change(obj)
        (root / path).write_text(yaml.safe_dump(obj, sort_keys=True))
    return edit


def new_version(version: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        options = root / "kapitan/schemas/airflow-config-options"
        shutil.copy(options / "3.3.2.json", options / f"{version}.json")
        append("inventory/targets/dev.yml", f"    version: {version}\n    image:\n      tag: \"{version}\"\n")(root)
    return edit


def pvc_size(size: str) -> Callable[[Path], None]:
    return replace("inventory/targets/staging.yml", "storage_class: standard-rwx", f"storage_class: standard-rwx\n        size: {size}")


def lines_of(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines()]


# --- What it means for Airflow -------------------------------------------------------------------


def test_config_change_rolls_the_components_that_carry_its_checksum(repo: Path) -> None:
    name = branch(repo, "config", append("inventory/targets/dev.yml",
                                         "    config:\n      dag_processor:\n        refresh_interval: 120\n"), "dev")
    out = lines_of(diff(repo, "--base", "main", "--head", name))
    assert "api-server, dag-processor, scheduler and triggerer roll (checksum/airflow-config changed)" in out
    assert "data[airflow.cfg] [dag_processor] refresh_interval: 60 -> 120" in out
    assert "unchanged: bootstrap, prod, staging" in out
    assert out[-1] == "no danger"


def test_upgrade_runs_a_new_migration_job_from_one_version_to_the_other(repo: Path) -> None:
    name = branch(repo, "upgrade", new_version("3.4.0"), "dev")
    out = diff(repo, "--base", "main", "--head", name, "--target", "dev")
    jobs = set(MIGRATE_JOB.findall(out))
    new_job = next(j for j in jobs if (repo / "compiled").exists() and j not in git(repo, "ls-tree", "-r", "--name-only", "main", "compiled/dev"))
    assert f"the migration Job {new_job} runs: Airflow 3.3.2 -> 3.4.0" in lines_of(out)
    assert "Airflow upgrade 3.3.2 -> 3.4.0: Airflow pods wait for the migration before they start" in lines_of(out)
    assert f"~ Job {new_job} (replaced: " in out


def test_downgrade_is_a_danger_the_migration_job_refuses(repo: Path) -> None:
    name = branch(repo, "downgrade", new_version("3.3.1"), "dev")
    out = diff(repo, "--base", "main", "--head", name, "--fail-on", "danger", code=1)
    job = next(j for j in MIGRATE_JOB.findall(out) if j not in git(repo, "ls-tree", "-r", "--name-only", "main", "compiled/dev"))
    assert (f"DANGER Airflow downgrade 3.3.2 -> 3.3.1 is refused: the migration Job {job} fails on a database 3.3.2 "
            "migrated and every Airflow pod waits for it (run `airflow db downgrade --to-version 3.3.1` with 3.3.2 first)"
            ) in lines_of(out)


def test_executor_change_warns_about_tasks_in_flight(repo: Path) -> None:
    name = branch(repo, "executor", replace("inventory/targets/staging.yml", "airflow.executor.kubernetes",
                                            "airflow.executor.celery"), "staging")
    out = lines_of(diff(repo, "--base", "main", "--head", name))
    assert ("executor KubernetesExecutor -> CeleryExecutor: tasks in flight are not adopted by the new executor "
            "(they fail, or retry if they have retries); pause the DAGs and let running tasks finish first") in out
    assert "celery-worker starts (new)" in " ".join(out) or any(line.endswith("start (new)") or line.endswith("starts (new)") for line in out)


def test_dag_source_move_names_the_old_and_new_ref(repo: Path) -> None:
    name = branch(repo, "dag-ref", replace("inventory/targets/dev.yml", "ref: main", "ref: develop"), "dev")
    out = lines_of(diff(repo, "--base", "main", "--head", name))
    assert "DAG source moves: ref main -> develop (the DAGs the scheduler runs change with it)" in out


def test_fernet_rotation_shows_the_ref_tag_only_and_says_what_breaks(repo: Path) -> None:
    secret = (repo / "kapitan/refs/targets/dev/fernet_key").read_text()
    name = branch(repo, "fernet", lambda root: (root / "kapitan/refs/targets/dev/fernet_key").unlink(), "dev")
    out = diff(repo, "--base", "main", "--head", name)
    assert ("secret rotated: Secret airflow-secrets fernet-key (ref ?{base64:targets/dev/fernet_key}), value changed; "
            "the fernet key: without the rotation procedure (first NEW,OLD, then `airflow rotate-fernet-key`, then NEW "
            "alone: README, Rotating a secret) connections, variables and trigger arguments encrypted with the old key "
            "can no longer be read") in lines_of(out)
    assert "stringData.fernet-key: value changed (?{base64:targets/dev/fernet_key})" in lines_of(out)
    new_secret = (repo / ".git").exists() and git(repo, "show", f"{name}:kapitan/refs/targets/dev/fernet_key")
    data = [yaml.safe_load(s)["data"] for s in (secret, new_secret)]
    assert all(d not in out for d in data)
    import base64

    assert all(base64.b64decode(d).decode() not in out for d in data)
    assert not re.search(r"fernet_key:[0-9a-f]{8}", out)  # not even the tag's hash


def write_fernet_ref(value: str) -> Callable[[Path], None]:
    """The ref written as the README's rotation steps write it: `kapitan refs --write` from a file."""
    def edit(root: Path) -> None:
        (root / "fernet.tmp").write_text(value)
        result = subprocess.run([str(Path(sys.executable).with_name("kapitan")), "refs", "--write", "base64:targets/dev/fernet_key",
                                 "-f", "fernet.tmp"], cwd=root, capture_output=True, text=True)
        (root / "fernet.tmp").unlink()
        assert result.returncode == 0, result.stderr
    return edit


def test_fernet_rotation_steps_are_told_apart_by_the_refs_on_both_sides(repo: Path) -> None:
    import base64

    old = base64.b64decode(yaml.safe_load((repo / "kapitan/refs/targets/dev/fernet_key").read_text())["data"]).decode()
    new = "QnJhbmQtbmV3LWZlcm5ldC1rZXktZm9yLXRoZS10ZXN0"
    keep = branch(repo, "fernet-keep", write_fernet_ref(f"{new}=,{old}"), "dev")
    out = lines_of(diff(repo, "--base", "main", "--head", keep))
    assert ("secret rotated: Secret airflow-secrets fernet-key (ref ?{base64:targets/dev/fernet_key}), value changed; the fernet "
            "key: a new key first and the old one kept (NEW,OLD): what the old key encrypted still reads; next run "
            "`airflow rotate-fernet-key`, then drop the old key (README, Rotating a secret)") in out
    drop = branch(repo, "fernet-drop", write_fernet_ref(new), "dev")
    out = lines_of(diff(repo, "--base", keep, "--head", drop))
    assert any(line.endswith("the fernet key: the old key dropped (NEW alone): only safe once `airflow rotate-fernet-key` "
                             "ran with NEW,OLD (README, Rotating a secret)") for line in out)
    # Straight from the old key to the new one: what breaks.
    out = lines_of(diff(repo, "--base", "main", "--head", drop))
    assert any(line.endswith("can no longer be read") and "fernet-key" in line for line in out)
    assert not any(value in "\n".join(out) for value in (old, new))


# --- Dangers -------------------------------------------------------------------------------------


def test_bundled_database_removed_is_data_loss(repo: Path) -> None:
    name = branch(repo, "external-db", lambda root: (
        replace("inventory/targets/dev.yml", "airflow.database.bundled", "airflow.database.external")(root),
        append("inventory/targets/dev.yml", "    database:\n      external:\n        secret_name: airflow-metadata-db\n")(root)),
        "dev")
    out = diff(repo, "--base", "main", "--head", name, "--fail-on", "danger", code=1)
    assert ("DANGER data loss: StatefulSet airflow-postgres removed, and with it the bundled database "
            "(its claims are retained, but nothing uses them)") in lines_of(out)


def test_environment_removed_loses_its_namespace_and_claims(repo: Path) -> None:
    name = branch(repo, "remove-staging", lambda root: (root / "inventory/targets/staging.yml").unlink())
    out = lines_of(diff(repo, "--base", "main", "--head", name))
    kept = "(Argo CD and Flux leave it in place, Prune=false: its data stays until deleted by hand, but nothing uses it)"
    assert f"DANGER data loss: Namespace airflow-staging removed {kept}" in out
    assert f"DANGER data loss: PersistentVolumeClaim airflow-logs removed {kept}" in out
    assert any(line.startswith("staging: environment removed:") for line in out)


def test_claim_shrink_fails_the_sync(repo: Path) -> None:
    name = branch(repo, "shrink", pvc_size("10Gi"), "staging")
    out = lines_of(diff(repo, "--base", "main", "--head", name))
    assert "DANGER sync fails: PersistentVolumeClaim airflow-logs shrinks 20Gi -> 10Gi (a claim cannot shrink)" in out


def test_claim_growth_is_no_danger(repo: Path) -> None:
    name = branch(repo, "grow", pvc_size("40Gi"), "staging")
    out = lines_of(diff(repo, "--base", "main", "--head", name, "--fail-on", "danger"))
    assert "spec.resources.requests.storage: 20Gi -> 40Gi" in out and out[-1] == "no danger"


def test_claim_storage_class_change_fails_the_sync(repo: Path) -> None:
    name = branch(repo, "storage-class", replace("inventory/targets/staging.yml", "storage_class: standard-rwx",
                                                 "storage_class: efs-sc"), "staging")
    out = lines_of(diff(repo, "--base", "main", "--head", name))
    assert ("DANGER sync fails: PersistentVolumeClaim airflow-logs spec.storageClassName changed (immutable: only a "
            "size increase is allowed); a new claim means new, empty storage") in out


def test_statefulset_claim_template_change_fails_the_sync(repo: Path) -> None:
    name = branch(repo, "db-size", append("inventory/targets/dev.yml",
                                          "    database:\n      bundled:\n        storage_size: 16Gi\n"), "dev")
    out = lines_of(diff(repo, "--base", "main", "--head", name))
    assert ("DANGER sync fails: StatefulSet airflow-postgres spec.volumeClaimTemplates changed (immutable); "
            "delete the StatefulSet with --cascade=orphan first (its pods and claims stay)") in out


def test_deployment_selector_change_fails_the_sync(repo: Path) -> None:
    path = "compiled/dev/manifests/workloads/deployment-airflow-scheduler.yaml"
    name = branch(repo, "selector", edit_object(path, lambda o: o["spec"]["selector"]["matchLabels"].update(tier="x")),
                  compile=False)
    out = lines_of(diff(repo, "--base", "main", "--head", name))
    assert ("DANGER sync fails: Deployment airflow-scheduler spec.selector changed (immutable); delete the Deployment "
            "first (its pods stop until the sync re-creates it)") in out


def test_job_template_change_under_the_same_name_fails_the_sync(repo: Path) -> None:
    job = next(p for p in git(repo, "ls-tree", "-r", "--name-only", "main", "compiled/dev").split() if "db-migrate" in p)
    name = branch(repo, "job-template", edit_object(job, lambda o: o["spec"]["template"]["spec"].update(priorityClassName="high")),
                  compile=False)
    job_name = Path(job).stem.removeprefix("job-")
    out = lines_of(diff(repo, "--base", "main", "--head", name))
    assert (f"DANGER sync fails: Job {job_name} spec.template changed (immutable); give the Job a new name or "
            "delete it first") in out


def test_service_cluster_ip_change_fails_the_sync(repo: Path) -> None:
    path = "compiled/dev/manifests/workloads/service-airflow-api-server.yaml"
    name = branch(repo, "cluster-ip", edit_object(path, lambda o: o["spec"].update(clusterIP="10.96.0.10")), compile=False)
    out = lines_of(diff(repo, "--base", "main", "--head", name))
    assert "DANGER sync fails: Service airflow-api-server spec.clusterIP changed (immutable); delete the Service first" in out


def test_service_type_change_is_said_but_is_no_danger(repo: Path) -> None:
    name = branch(repo, "lb", append("inventory/targets/dev.yml", "    api_server:\n      service:\n        type: LoadBalancer\n"), "dev")
    out = lines_of(diff(repo, "--base", "main", "--head", name))
    assert ("Service airflow-api-server type ClusterIP -> LoadBalancer (changed in place; the cloud provisions a load "
            "balancer with an external address)") in out


def test_immutable_config_map_data_change_fails_the_sync(repo: Path) -> None:
    path = "compiled/dev/manifests/base/configmap-airflow-postgres.yaml"
    base = branch(repo, "immutable-base", edit_object(path, lambda o: o.update(immutable=True)), compile=False)
    git(repo, "checkout", "-q", base)
    git(repo, "checkout", "-q", "-b", "immutable-change")
    edit_object(path, lambda o: o["data"].update(extra="1"))(repo)
    git(repo, "commit", "-qam", "change")
    git(repo, "checkout", "-q", "main")
    out = lines_of(diff(repo, "--base", base, "--head", "immutable-change"))
    assert ("DANGER sync fails: ConfigMap airflow-postgres is immutable and its data changed; rename it or delete it "
            "first") in out


# --- Formats, errors, the working tree -----------------------------------------------------------


def test_json_lists_dangers_and_field_changes(repo: Path) -> None:
    name = branch(repo, "json", pvc_size("5Gi"), "staging")
    data = json.loads(diff(repo, "--base", "main", "--head", name, "--format", "json"))
    staging = next(e for e in data["environments"] if e["name"] == "staging")
    assert data["dangers"] == 1 and staging["dangers"] == [
        "DANGER sync fails: PersistentVolumeClaim airflow-logs shrinks 20Gi -> 5Gi (a claim cannot shrink)"]
    claim = next(o for o in staging["objects"] if o["kind"] == "PersistentVolumeClaim")
    assert claim["changes"] == [{"path": "spec.resources.requests.storage", "old": "20Gi", "new": "5Gi"}]


def test_markdown_has_a_summary_table_and_collapsible_details(repo: Path) -> None:
    out = diff(repo, "--base", "main", "--head", "shrink", "--format", "markdown")
    assert out.startswith("<!-- airflow-gitops-diff -->\n")
    assert ("| staging | 1 changed | ⚠️ **DANGER sync fails: PersistentVolumeClaim airflow-logs shrinks 20Gi -&gt; "
            "10Gi (a claim cannot shrink)** |") in out
    assert "<details><summary>staging: 1 changed</summary>" in out


def test_unknown_revision_and_target_are_named(repo: Path) -> None:
    out = diff(repo, "--base", "nope", "--head", "main", code=1)
    assert "error: --base nope: not a revision of this repository" in out
    out = diff(repo, "--base", "main", "--head", "main", "--target", "qa", code=1)
    assert "error: --target qa: no compiled/qa/ on either side (environments: bootstrap, dev, prod, staging)" in out


def test_working_tree_is_compared_with_the_merge_base_after_an_up_to_date_check(repo: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    git(repo, "worktree", "add", "-q", "-b", "wt", str(work), "main")
    append("inventory/targets/dev.yml", "    config:\n      core:\n        default_task_retries: 2\n")(work)
    result = compile_in(work, "-t", "dev")
    assert result.returncode == 0, result.stderr[-2000:]
    out = lines_of(diff(work))
    assert "data[airflow.cfg] [core] default_task_retries: (absent) -> 2" in out
    # A hand edit in compiled/ is refused: the diff would describe what no compile produces.
    config = work / "compiled/dev/manifests/base/configmap-airflow-config.yaml"
    config.write_text(config.read_text().replace("parallelism = 8", "parallelism = 9"))
    out = diff(work, code=1)
    assert "error: compiled/ in the working tree is not what the inventory compiles to; run `make compile`" in out
    git(repo, "worktree", "remove", "--force", str(work))
