"""`airflow-gitops validate`: each check passes on this repository and fails, naming the file and
what is wrong, on a copy broken on purpose."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, copy_repo
from airflow_gitops import inventory
from airflow_gitops.validate import (airflow_config, dags_check, inventory_schema, kubernetes_schemas,
                                     kustomize_build, secrets_scan, security_policy, up_to_date)
from airflow_gitops.validate.runner import context_for

CLI = str(Path(sys.executable).with_name("airflow-gitops"))


@pytest.fixture(autouse=True)
def shared_tool_environments(monkeypatch):
    """Copies use the repository's Airflow and checkov virtualenvs instead of building their own."""
    monkeypatch.setenv("AIRFLOW_GITOPS_CACHE", str(REPO / ".cache"))


@pytest.fixture
def repo_copy(tmp_path) -> Path:
    root = copy_repo(tmp_path / "repo")
    for name in ("dags", ".checkov.yaml"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, root / name)
    return root


def edit_yaml(path: Path, change) -> None:
    obj = yaml.safe_load(path.read_text())
    change(obj)
    path.write_text(yaml.safe_dump(obj, sort_keys=False))


def only(outcomes, target="dev"):
    return outcomes[target]


def test_inventory_check_names_file_and_key():
    ctx = context_for(REPO, ["staging"])
    assert only(inventory_schema.run(ctx), "staging").status == "ok"
    ctx.parameters["staging"] = {**ctx.parameters["staging"], "scheduler": {**ctx.parameters["staging"]["scheduler"], "replicas": "three"}}
    outcome = only(inventory_schema.run(ctx), "staging")
    assert outcome.status == "fail"
    assert outcome.reasons == ["inventory/targets/staging.yml: parameters.airflow.scheduler.replicas: 'three' is not of type 'integer'"]


def test_inventory_check_refuses_a_promoted_from_that_names_no_environment(repo_copy):
    target = repo_copy / "inventory" / "targets" / "prod.yml"
    target.write_text(target.read_text().replace("promoted_from: staging", "promoted_from: stagin"))
    outcome = inventory_schema.run(context_for(repo_copy, ["prod"]))["prod"]
    assert outcome.reasons == ["inventory/targets/prod.yml: parameters.airflow.dags.git_sync.promoted_from: 'stagin' "
                               "is not an environment (did you mean staging? known: dev, prod, staging)"]


def test_every_environment_s_parameters_come_from_one_kapitan_call_and_equal_a_per_target_read(repo_copy, tmp_path):
    every = inventory.all_target_parameters(repo_copy, tmp_path / "cache")
    assert sorted(every) == inventory.list_targets(repo_copy)
    assert every == {t: inventory.target_parameters(repo_copy, t) for t in every}
    # Remembered until an inventory file changes: then read again.
    assert inventory.all_target_parameters(repo_copy, tmp_path / "cache") == every
    staging = repo_copy / "inventory" / "targets" / "staging.yml"
    staging.write_text(staging.read_text().replace("ref: staging\n", "ref: staging-next\n"))
    again = inventory.all_target_parameters(repo_copy, tmp_path / "cache")
    assert again["staging"]["airflow"]["dags"]["git_sync"]["ref"] == "staging-next"


def test_parameters_remembered_of_an_older_inventory_are_forgotten_after_a_day(repo_copy, tmp_path):
    remembered = tmp_path / "cache" / "inventory"
    remembered.mkdir(parents=True)
    old, recent = remembered / "0ld-dev.json", remembered / "r3cent-dev.json"
    for path in (old, recent):
        path.write_text("{}")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (two_days_ago, two_days_ago))
    inventory.all_target_parameters(repo_copy, tmp_path / "cache")
    assert not old.exists() and recent.exists()
    assert len(list(remembered.glob("*.json"))) == 1 + len(inventory.list_targets(repo_copy))


def test_a_target_that_does_not_render_is_named_in_every_environment_s_inventory_error(repo_copy):
    # reclass-rs renders every target to render one: the one-call read fails, and each
    # environment's own read then names the file to fix.
    dev = repo_copy / "inventory" / "targets" / "dev.yml"
    dev.write_text(dev.read_text().replace("  - common\n", "  - common\n  - airflow.executor.kubernets\n", 1))
    ctx = context_for(repo_copy, None)
    assert set(ctx.inventory_errors) == {"dev", "staging", "prod"}
    assert all(error.startswith("inventory/targets/dev.yml: Class airflow.executor.kubernets not found (did you mean airflow.executor.kubernetes?)")
               for error in ctx.inventory_errors.values())


def test_up_to_date_reports_hand_edits_missing_and_extra_files_with_a_diff(repo_copy):
    scheduler = next((repo_copy / "compiled" / "dev").rglob("deployment-airflow-scheduler.yaml"))
    scheduler.write_text(scheduler.read_text().replace("replicas: 1", "replicas: 3"))
    (repo_copy / "compiled" / "prod" / "manifests" / "base" / "configmap-by-hand.yaml").write_text("kind: ConfigMap\n")
    next((repo_copy / "compiled" / "staging").rglob("service-airflow-api-server.yaml")).unlink()
    outcomes = up_to_date.run(context_for(repo_copy, None))
    dev = outcomes["dev"]
    assert dev.status == "fail" and len(dev.reasons) == 1
    assert dev.reasons[0].startswith("compiled/dev/manifests/workloads/deployment-airflow-scheduler.yaml: differs from a fresh compile")
    assert "-  replicas: 3" in dev.reasons[0] and "+  replicas: 1" in dev.reasons[0]
    # What it compares: the working tree's compiled/ (edited, not committed) with a fresh compile.
    assert "--- compiled/dev/manifests/workloads/deployment-airflow-scheduler.yaml (working tree)" in dev.reasons[0]
    assert "+++ compiled/dev/manifests/workloads/deployment-airflow-scheduler.yaml (fresh compile)" in dev.reasons[0]
    assert "committed/" not in dev.reasons[0]
    assert outcomes["prod"].reasons == ["compiled/prod/manifests/base/configmap-by-hand.yaml: not produced by a compile "
                                        "(written by hand, or left from a removed component)"]
    assert outcomes["staging"].reasons == ["compiled/staging/manifests/workloads/service-airflow-api-server.yaml: missing; "
                                           "run `make compile` and commit compiled/"]
    assert outcomes["bootstrap"].status == "ok"


def test_up_to_date_reports_a_failing_compile(repo_copy):
    target = repo_copy / "inventory" / "targets" / "dev.yml"
    assert "\n  airflow:\n" in target.read_text()
    target.write_text(target.read_text().replace("\n  airflow:\n", "\n  airflow:\n    schedulr: {}\n", 1))
    outcome = up_to_date.run(context_for(repo_copy, ["dev"]))["dev"]
    assert outcome.status == "fail" and "inventory/targets/dev.yml: parameters.airflow" in outcome.reasons[0]


def test_kubernetes_schemas_are_strict_and_cover_custom_resources(repo_copy):
    ctx = context_for(repo_copy, None)
    assert all(o.status == "ok" for o in kubernetes_schemas.run(ctx).values())
    edit_yaml(next((repo_copy / "compiled" / "prod").rglob("deployment-airflow-scheduler.yaml")),
              lambda o: o["spec"].update(replica=2))
    edit_yaml(repo_copy / "compiled" / "staging" / "argocd" / "application-airflow-staging.yaml",
              lambda o: o["spec"].pop("project"))
    outcomes = kubernetes_schemas.run(ctx)
    assert len(outcomes["prod"].reasons) == 1 and "deployment-airflow-scheduler.yaml: spec" in outcomes["prod"].reasons[0]
    assert "replica" in outcomes["prod"].reasons[0] and "(Kubernetes 1.33)" in outcomes["prod"].reasons[0]
    assert outcomes["staging"].reasons == ["compiled/staging/argocd/application-airflow-staging.yaml: spec: 'project' is a required property"]


def test_kustomize_finds_unlisted_files_and_broken_kustomizations(repo_copy):
    ctx = context_for(repo_copy, None)
    assert all(o.status == "ok" for o in kustomize_build.run(ctx).values())
    edit_yaml(repo_copy / "compiled" / "dev" / "manifests" / "workloads" / "kustomization.yaml",
              lambda o: o["resources"].remove("service-airflow-api-server.yaml"))
    edit_yaml(repo_copy / "compiled" / "prod" / "manifests" / "base" / "kustomization.yaml",
              lambda o: o["resources"].append("configmap-gone.yaml"))
    outcomes = kustomize_build.run(ctx)
    assert outcomes["dev"].reasons == ["compiled/dev/manifests/workloads/service-airflow-api-server.yaml: "
                                       "not listed in any kustomization.yaml, so never applied"]
    assert outcomes["prod"].reasons[0].startswith("compiled/prod/manifests: kubectl kustomize failed:")
    assert outcomes["staging"].status == "ok"


def test_security_policy_fails_a_privileged_container_and_counts_few_findings_without_skips(repo_copy):
    edit_yaml(next((repo_copy / "compiled" / "dev").rglob("deployment-airflow-triggerer.yaml")),
              lambda o: o["spec"]["template"]["spec"]["containers"][0]["securityContext"].update(
                  privileged=True, allowPrivilegeEscalation=True))
    outcomes = security_policy.run(context_for(repo_copy, None))
    assert outcomes["prod"].status == outcomes["staging"].status == "ok"
    assert outcomes["bootstrap"].status == "skip"
    dev = outcomes["dev"].reasons
    assert any("deployment-airflow-triggerer.yaml: CKV_K8S_16 " in r for r in dev), dev
    assert all("deployment-airflow-triggerer.yaml" in r for r in dev)
    # The aim: even with no skips at all, at most 0.3 failed checks per resource.
    findings = security_policy.scan(REPO, use_config=False)
    assert len(findings.failed) / findings.resources <= 0.3, (len(findings.failed), findings.resources)


def test_secrets_check_finds_literal_values_and_credentials(repo_copy):
    ctx = context_for(repo_copy, None)
    assert all(o.status == "ok" for o in secrets_scan.run(ctx).values())
    edit_yaml(repo_copy / "compiled" / "dev" / "manifests" / "base" / "secret-airflow-secrets.yaml",
              lambda o: o["stringData"].update({"jwt-secret": "plain-text-value"}))
    (repo_copy / "inventory" / "targets" / "prod.yml").write_text(
        (repo_copy / "inventory" / "targets" / "prod.yml").read_text()
        + "# postgresql://airflow:hunter2hunter2@db.example.com/airflow\n")
    outcomes = secrets_scan.run(ctx)
    assert outcomes["dev"].reasons == ["compiled/dev/manifests/base/secret-airflow-secrets.yaml: Secret airflow-secrets "
                                       "stringData.jwt-secret is not a Kapitan ref tag (a literal value in Git)"]
    assert len(outcomes["prod"].reasons) == 1 and "a password in a URL" in outcomes["prod"].reasons[0]
    assert outcomes["prod"].reasons[0].startswith("inventory/targets/prod.yml:")


def write_ref(root: Path, path: str, value: str, tmp_path: Path) -> None:
    """A base64 ref written by Kapitan itself (kapitan refs --write), as a rotation would."""
    source = tmp_path / "ref-value"
    source.write_text(value)
    kapitan = str(Path(sys.executable).with_name("kapitan"))
    subprocess.run([kapitan, "refs", "--write", f"base64:{path}", "-f", str(source)], cwd=root, check=True, capture_output=True)


def test_secrets_check_fails_a_jwt_secret_too_short_for_hs512_and_says_how_to_rotate_it(repo_copy, tmp_path):
    write_ref(repo_copy, "targets/dev/jwt_secret", "k" * 43, tmp_path)
    outcomes = secrets_scan.run(context_for(repo_copy, None))
    assert outcomes["dev"].reasons == [
        "kapitan/refs/targets/dev/jwt_secret: [api_auth] jwt_secret is 43 bytes long; HS512 (Airflow's jwt_algorithm "
        "when a jwt_secret is set) needs at least 64 (PyJWT warns below that, RFC 7518 section 3.2). Fix: "
        "`rm kapitan/refs/targets/dev/jwt_secret && make compile` generates a new key; commit it with compiled/dev. "
        "Once it is applied, the pods that read it roll by themselves (checksum/secrets): tokens signed with the old key "
        "are no longer accepted, so tasks running across the roll fail and need a retry"]
    assert outcomes["prod"].status == outcomes["staging"].status == "ok"  # external-secrets: no key in Git
    write_ref(repo_copy, "targets/dev/jwt_secret", "k" * 64, tmp_path)
    assert secrets_scan.run(context_for(repo_copy, ["dev"]))["dev"].status == "ok"


def test_secrets_check_fails_an_api_secret_key_too_short_for_the_hs512_log_tokens(repo_copy, tmp_path):
    write_ref(repo_copy, "targets/dev/api_secret_key", "k" * 43, tmp_path)
    [reason] = secrets_scan.run(context_for(repo_copy, ["dev"]))["dev"].reasons
    assert reason.startswith("kapitan/refs/targets/dev/api_secret_key: [api] secret_key is 43 bytes long; HS512 "
                             "(Airflow's log-fetching tokens) needs at least 64")


def test_the_jwt_secret_minimum_follows_a_configured_jwt_algorithm(repo_copy, tmp_path):
    target = repo_copy / "inventory" / "targets" / "dev.yml"
    assert "\n  airflow:\n" in target.read_text()
    target.write_text(target.read_text().replace(
        "\n  airflow:\n", "\n  airflow:\n    config:\n      api_auth:\n        jwt_algorithm: HS256\n", 1))
    write_ref(repo_copy, "targets/dev/jwt_secret", "k" * 32, tmp_path)
    assert secrets_scan.run(context_for(repo_copy, ["dev"]))["dev"].status == "ok"
    write_ref(repo_copy, "targets/dev/jwt_secret", "k" * 31, tmp_path)
    [reason] = secrets_scan.run(context_for(repo_copy, ["dev"]))["dev"].reasons
    assert "is 31 bytes long; HS256 (parameters.airflow.config.api_auth.jwt_algorithm) needs at least 32" in reason


@pytest.mark.parametrize("text, finding", [
    ("key: |\n  -----BEGIN OPENSSH PRIVATE KEY-----\n", "a private key"),
    ("token: ghp_" + "a1B2" * 10 + "\n", "a GitHub token"),
    ("password: s3cret-pass\n", "'password' holds a literal value"),
    ("url: https://user:tok3n@git.example.com/x.git\n", "a password in a URL"),
])
def test_secrets_patterns(text, finding):
    problems = secrets_scan.scan_text(text, "f.yml")
    assert problems and finding in problems[0]


@pytest.mark.parametrize("text", [
    "jwt-secret: ?{base64:targets/dev/jwt_secret||random:str:43}\n",
    "value: postgresql+psycopg2://airflow:$(AIRFLOW_DATABASE_PASSWORD)@db:5432/airflow\n",
    "secret_key: connection\n",
    "known_hosts: github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
])
def test_secrets_patterns_leave_references_and_public_keys_alone(text):
    assert secrets_scan.scan_text(text, "f.yml") == []


def test_dags_check_reports_a_syntax_error_with_file_and_line(repo_copy):
    (repo_copy / "dags" / "broken.py").write_text("from airflow.sdk import dag\n\ndef oops(:\n    pass\n")
    outcomes = dags_check.run(context_for(repo_copy, ["dev"]))
    assert outcomes["dev"].status == "fail"
    assert any("broken.py:3" in r for r in outcomes["dev"].reasons), outcomes["dev"].reasons


@pytest.mark.slow
def test_airflow_check_refuses_an_option_airflow_does_not_know(repo_copy):
    config = next((repo_copy / "compiled" / "staging").rglob("configmap-airflow-config.yaml"))
    edit_yaml(config, lambda o: o["data"].update({"airflow.cfg": o["data"]["airflow.cfg"].replace("[core]\n", "[core]\nparalelism = 4\n", 1)}))
    outcomes = airflow_config.run(context_for(repo_copy, ["staging"]))
    assert outcomes["staging"].status == "fail"
    assert "core" in outcomes["staging"].reasons[0] and "paralelism" in outcomes["staging"].reasons[0]


def test_airflow_check_asks_airflow_once_per_accepted_text_and_never_remembers_a_refusal(repo_copy, monkeypatch, tmp_path):
    from airflow_gitops import airflow_checks

    monkeypatch.setenv("AIRFLOW_GITOPS_CACHE", str(tmp_path / "cache"))
    # The Airflow environment itself is shared (no fresh install): link it into this cache.
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "airflow-envs").symlink_to(REPO / ".cache" / "airflow-envs")
    ctx = context_for(repo_copy, ["staging"])
    assert airflow_config.run(ctx)["staging"].status == "ok"  # Airflow asked, and accepted
    asked = []
    monkeypatch.setattr(airflow_checks, "check_airflow_cfg", lambda *a, **k: asked.append(a) or (_ for _ in ()).throw(
        airflow_checks.AirflowCheckError("asked again")))
    assert airflow_config.run(ctx)["staging"].status == "ok" and asked == []  # the same bytes: not asked again
    config = next((repo_copy / "compiled" / "staging").rglob("configmap-airflow-config.yaml"))
    edit_yaml(config, lambda o: o["data"].update({"airflow.cfg": o["data"]["airflow.cfg"] + "\n"}))
    outcome = airflow_config.run(ctx)["staging"]
    assert outcome.status == "fail" and outcome.reasons == ["asked again"] and len(asked) == 1
    assert airflow_config.run(ctx)["staging"].status == "fail" and len(asked) == 2  # a refusal is asked again


def test_validate_exits_non_zero_and_tables_the_stale_environment(repo_copy):
    next((repo_copy / "compiled" / "prod").rglob("deployment-airflow-api-server.yaml")).write_text("edited: by hand\n")
    result = subprocess.run([CLI, "validate", "--check", "inventory", "--check", "up-to-date"], cwd=repo_copy,
                            capture_output=True, text=True)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["check", "dev", "prod", "staging", "bootstrap"]
    assert lines[2].split() == ["up-to-date", "ok", "FAIL", "ok", "ok"]
    assert "prod / up-to-date:" in result.stdout and "deployment-airflow-api-server.yaml: differs" in result.stdout
    assert "validate [2/2]" in result.stderr


@pytest.mark.slow
def test_validate_passes_on_this_repository():
    result = subprocess.run([CLI, "validate", "--json", "--quiet"], cwd=REPO, capture_output=True, text=True)
    report = json.loads(result.stdout)
    failures = {c: {t: o["reasons"] for t, o in per.items() if o["status"] == "fail"} for c, per in report["checks"].items()}
    assert result.returncode == 0 and report["ok"], failures
    assert list(report["checks"]) == ["inventory", "up-to-date", "kubernetes-schemas", "kustomize", "security-policy",
                                      "secrets", "airflow", "dags"]
    assert report["targets"] == ["dev", "prod", "staging", "bootstrap"]


def test_secrets_check_fails_a_fernet_key_airflow_cannot_use_and_accepts_a_rotation_pair(repo_copy, tmp_path):
    from cryptography.fernet import Fernet

    # An empty value (a rotation step run in a new shell) makes the Secret `=`.
    write_ref(repo_copy, "targets/dev/fernet_key", "", tmp_path)
    [reason] = secrets_scan.run(context_for(repo_copy, ["dev"]))["dev"].reasons
    assert reason.startswith("kapitan/refs/targets/dev/fernet_key: [core] fernet_key is not a Fernet key")
    new, old = (Fernet.generate_key().decode() for _ in range(2))
    # NEW,OLD as the README's rotation writes it: the Secret appends the first key's `=`.
    write_ref(repo_copy, "targets/dev/fernet_key", f"{new[:-1]}=,{old}", tmp_path)
    assert secrets_scan.run(context_for(repo_copy, ["dev"]))["dev"].status == "ok"


GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}


@pytest.mark.slow
def test_validate_changed_checks_the_changed_environments_and_still_sees_an_uncompiled_edit(repo_copy):
    import os

    env = {**os.environ, **GIT_ENV}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "base"]):
        subprocess.run(["git", *args], cwd=repo_copy, check=True, env=env)
    staging = repo_copy / "inventory/targets/staging.yml"
    staging.write_text(staging.read_text() + "    scheduler:\n      replicas: 3\n")
    assert subprocess.run([CLI, "compile"], cwd=repo_copy, capture_output=True).returncode == 0
    result = subprocess.run([CLI, "validate", "--changed"], cwd=repo_copy, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validate --changed: compiled output differs from " in result.stderr and "for: staging (" in result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[1:9]}
    assert result.stdout.splitlines()[0].split() == ["check", "dev", "prod", "staging", "bootstrap"]
    assert rows["up-to-date"] == ["ok", "ok", "ok", "ok"] and rows["inventory"] == ["ok", "ok", "ok", "-"]
    assert rows["airflow"] == ["-", "-", "ok", "-"] and rows["security-policy"] == ["-", "-", "ok", "-"]
    # An edit that was not compiled leaves compiled/ as it was: up-to-date, which covers every
    # environment, still fails it.
    dev = repo_copy / "inventory/targets/dev.yml"
    dev.write_text(dev.read_text().replace("ref: main", "ref: develop"))
    result = subprocess.run([CLI, "validate", "--changed", "--json", "--quiet"], cwd=repo_copy, capture_output=True, text=True)
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["checks"]["up-to-date"]["dev"]["status"] == "fail"
    base = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=repo_copy, capture_output=True, text=True).stdout.strip()
    assert report["checks"]["airflow"]["dev"] == {"status": "skip", "reasons": [f"compiled output unchanged since {base}"]}
