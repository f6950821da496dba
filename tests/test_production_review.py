"""What a pre-production review found (issue 13): a first install that converges, production
settings that cannot be forgotten, least privilege per process, secrets that roll their readers,
data that outlives a removal, and class choices that cannot silently override each other."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from conftest import ENVIRONMENTS, compile_in, load_manifests
from local_postgres import PG_BIN, throwaway_postgres


def append_to_target(root: Path, env: str, text: str) -> None:
    target = root / "inventory" / "targets" / f"{env}.yml"
    target.write_text(target.read_text() + text)


def refused(root: Path, env: str, *words: str) -> str:
    """Compiles `env`, expects a refusal naming the target file and `words`, and compiled/ untouched."""
    before = {p: p.read_bytes() for p in (root / "compiled").rglob("*") if p.is_file()}
    result = compile_in(root, "-t", env)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-2000:]
    assert f"inventory/targets/{env}.yml" in output, output[-2000:]
    for word in words:
        assert word in output, (word, output[-2000:])
    assert {p: p.read_bytes() for p in (root / "compiled").rglob("*") if p.is_file()} == before
    return output


def pod_spec(obj: dict) -> dict | None:
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    if "template" in spec:
        return spec["template"]["spec"]
    return None


def wave(obj: dict) -> int:
    return int(obj["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])


# --- A first install converges ----------------------------------------------------------------

@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_claim_is_applied_in_the_wave_of_its_first_consumer(manifests: Callable, env):
    """With a WaitForFirstConsumer class a claim binds only once a pod using it is scheduled, and
    Argo CD waits for a Pending claim before the next wave: a claim must not come before its first
    consumer (nor after it, where the consumer would wait for a claim that does not exist)."""
    objects = manifests(env)
    claims = {o["metadata"]["name"]: wave(o) for o in objects.values() if o["kind"] == "PersistentVolumeClaim"}
    consumers: dict[str, list[int]] = {}
    for obj in objects.values():
        spec = pod_spec(obj)
        for volume in (spec or {}).get("volumes", []):
            if "persistentVolumeClaim" in volume:
                consumers.setdefault(volume["persistentVolumeClaim"]["claimName"], []).append(wave(obj))
    for claim, claim_wave in claims.items():
        assert consumers.get(claim), f"{env}: nothing mounts the claim {claim}"
        assert claim_wave == min(consumers[claim]), (env, claim, claim_wave, consumers[claim])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_migration_job_mounts_no_claim(manifests: Callable, env):
    job = next(o for o in manifests(env).values() if o["kind"] == "Job" and o["metadata"]["name"].startswith("airflow-db-migrate-"))
    assert not [v for v in job["spec"]["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v]


def test_a_read_write_many_claim_without_storage_class_is_refused(scratch_repo):
    target = scratch_repo / "inventory" / "targets" / "staging.yml"
    target.write_text(target.read_text().replace("storage_class: standard-rwx", "storage_class: ''"))
    refused(scratch_repo, "staging", "parameters.airflow.logs.pvc.storage_class: is empty", "ReadWriteMany", "efs-sc")


def test_a_dag_claim_without_storage_class_is_refused(scratch_repo):
    target = scratch_repo / "inventory" / "targets" / "staging.yml"
    target.write_text(target.read_text().replace("  - airflow.dags.git-sync\n", "  - airflow.dags.pvc\n"))
    refused(scratch_repo, "staging", "parameters.airflow.dags.pvc.storage_class: is empty")


@pytest.mark.parametrize("url", ["", "https://github.com/example/airflow-gitops.git", "git@git.example.com:me/airflow-gitops.git"])
def test_a_placeholder_repository_is_refused(scratch_repo, url):
    append_to_target(scratch_repo, "dev", f"    gitops:\n      repo_url: '{url}'\n")
    refused(scratch_repo, "dev", "parameters.airflow.gitops.repo_url:", "inventory/classes/gitops-repository.yml")


def test_a_non_dev_environment_must_name_its_url(scratch_repo):
    target = scratch_repo / "inventory" / "targets" / "staging.yml"
    target.write_text(target.read_text().replace("base_url: https://airflow-staging.acme.internal", "base_url: ''"))
    refused(scratch_repo, "staging", "parameters.airflow.api_server.base_url: is empty in a staging environment")


def test_dev_may_leave_its_url_empty_and_others_write_it_into_airflow_cfg(manifests: Callable):
    assert "base_url" not in manifests("dev")["configmap-airflow-config.yaml"]["data"]["airflow.cfg"]
    assert "base_url = https://airflow.acme.internal\n" in manifests("prod")["configmap-airflow-config.yaml"]["data"]["airflow.cfg"]


# --- Image, version and class choices -----------------------------------------------------------

def test_an_image_tag_that_does_not_name_the_version_is_refused(scratch_repo):
    append_to_target(scratch_repo, "dev", "    image:\n      tag: 3.2.1\n")
    refused(scratch_repo, "dev", 'parameters.airflow.image.tag: "3.2.1" does not name Airflow 3.3.2', "carries_version: true")


@pytest.mark.parametrize("image", [
    "    image:\n      tag: slim-3.3.2-python3.12\n",
    "    image:\n      repository: registry.acme.internal/airflow\n      tag: 2026.11.30\n      carries_version: true\n",
])
def test_official_tag_variants_and_declared_custom_images_compile(scratch_repo, image):
    append_to_target(scratch_repo, "dev", image)
    result = compile_in(scratch_repo, "-t", "dev")
    assert result.returncode == 0, result.stdout[-2000:]


def test_two_classes_choosing_the_same_thing_are_refused_naming_both(scratch_repo):
    target = scratch_repo / "inventory" / "targets" / "staging.yml"
    # A feature class listed before another that makes the same choice.
    target.write_text(target.read_text().replace("  - airflow.executor.kubernetes\n", "  - airflow.executor.celery\n  - airflow.executor.kubernetes\n"))
    refused(scratch_repo, "staging", "parameters.airflow.executor: chosen by two classes",
            "airflow.executor.celery", "airflow.executor.kubernetes")


def test_a_class_listed_twice_is_one_choice(scratch_repo):
    target = scratch_repo / "inventory" / "targets" / "staging.yml"
    target.write_text(target.read_text().replace("  - profiles.staging\n", "  - profiles.staging\n  - airflow.executor.kubernetes\n"))
    result = compile_in(scratch_repo, "-t", "staging")
    assert result.returncode == 0, result.stdout[-2000:]


# --- Least privilege ------------------------------------------------------------------------------

SECRET_OPTIONS = {
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD": "database", "AIRFLOW__CORE__FERNET_KEY_CMD": "fernet-key",
    "AIRFLOW__API__SECRET_KEY_CMD": "api-secret-key", "AIRFLOW__API_AUTH__JWT_SECRET_CMD": "jwt-secret",
    "AIRFLOW__CELERY__BROKER_URL_CMD": "broker", "AIRFLOW__CELERY__RESULT_BACKEND_CMD": "result-backend",
}
# Which secrets each process reads (Airflow 3.3.2's code): the scheduler signs workload tokens,
# the api-server signs and checks every token, log servers check the log-fetching token, tasks
# get no key at all.
READS = {
    ("dev", "api-server"): {"database", "fernet-key", "api-secret-key", "jwt-secret"},
    ("dev", "scheduler"): {"database", "fernet-key", "jwt-secret", "api-secret-key"},  # LocalExecutor: serves task logs
    ("dev", "dag-processor"): {"database", "fernet-key"},
    ("dev", "triggerer"): {"database", "fernet-key", "api-secret-key"},
    ("staging", "scheduler"): {"database", "fernet-key", "jwt-secret"},
    ("staging", "api-server"): {"database", "fernet-key", "api-secret-key", "jwt-secret"},
    ("staging", "base"): set(),  # KubernetesExecutor worker pods
}


def containers_of(objects: dict) -> dict[str, dict]:
    found = {}
    for obj in objects.values():
        if obj["kind"] == "ConfigMap" and "pod_template.yaml" in obj.get("data", {}):
            for c in yaml.safe_load(obj["data"]["pod_template.yaml"])["spec"]["containers"]:
                found[c["name"]] = c
        spec = pod_spec(obj) if obj["kind"] in ("Deployment", "StatefulSet") else None
        for c in (spec or {}).get("containers", []):
            found.setdefault(c["name"], c)
    return found


@pytest.mark.parametrize("env,name", sorted(READS))
def test_each_process_gets_only_the_secrets_it_reads(manifests: Callable, env, name):
    container = containers_of(manifests(env))[name]
    reads = {SECRET_OPTIONS[e["name"]] for e in container.get("env", []) if e["name"] in SECRET_OPTIONS}
    assert reads == READS[(env, name)]


def test_celery_workers_get_no_signing_key_fernet_key_or_metadata_url(tmp_path):
    from conftest import copy_repo

    root = copy_repo(tmp_path / "repo")
    target = root / "inventory" / "targets" / "staging.yml"
    target.write_text(target.read_text().replace("  - airflow.executor.kubernetes\n", "  - airflow.executor.celery\n  - airflow.celery.flower\n"))
    assert compile_in(root, "-t", "staging").returncode == 0
    objects = load_manifests(root / "compiled", "staging")
    containers = containers_of(objects)
    env = {name: {SECRET_OPTIONS[e["name"]] for e in containers[name].get("env", []) if e["name"] in SECRET_OPTIONS}
           for name in ("worker", "flower", "scheduler")}
    assert env["worker"] == {"broker", "result-backend", "api-secret-key"}
    assert env["flower"] == {"broker"}
    assert env["scheduler"] == {"database", "fernet-key", "jwt-secret", "broker", "result-backend"}
    # Nor are the files there: the volume holds only what the pod reads.
    worker = objects["statefulset-airflow-celery-worker.yaml"]["spec"]["template"]["spec"]
    files = {item["path"] for v in worker["volumes"] if v["name"] == "secrets"
             for source in v["projected"]["sources"] for item in source["secret"]["items"]}
    # The result backend is the metadata database (its URL); the broker is the bundled Redis.
    assert files == {"sql-alchemy-conn", "api-secret-key", "redis-password"}


@pytest.mark.parametrize("env,component,executor", [("dev", "triggerer", True), ("staging", "triggerer", True), ("staging", "api-server", True),
                                                    ("dev", "api-server", False)])
def test_api_server_and_triggerer_read_pods_and_their_logs_and_nothing_more(manifests: Callable, env, component, executor):
    objects = manifests(env)
    name = f"airflow-{component}"
    role = objects.get(f"role-{name}.yaml")
    if not executor:
        # The LocalExecutor's tasks are not pods: the api-server gets no token at all.
        assert role is None
        assert objects[f"deployment-{name}.yaml"]["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
        return
    # The triggerer deletes the pod of a cancelled deferred KubernetesPodOperator task (on_kill).
    verbs = ["get", "list", "watch"] + (["delete"] if component == "triggerer" else [])
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": verbs},
                             {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]
    binding = objects[f"rolebinding-{name}.yaml"]
    assert binding["roleRef"]["name"] == name and binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": f"airflow-{env}"}]
    assert objects[f"deployment-{name}.yaml"]["spec"]["template"]["spec"]["automountServiceAccountToken"] is True
    assert objects[f"serviceaccount-{name}.yaml"]["automountServiceAccountToken"] is True
    # The NetworkPolicies let it reach the Kubernetes API.
    egress = objects["networkpolicy-airflow-egress-git-https.yaml"]["spec"]
    assert component in egress["podSelector"]["matchExpressions"][0]["values"]
    assert {"protocol": "TCP", "port": 443} in egress["egress"][0]["ports"] and {"protocol": "TCP", "port": 6443} in egress["egress"][0]["ports"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_api_server_liveness_does_not_depend_on_the_database(manifests: Callable, env):
    main = containers_of(manifests(env))["api-server"]
    assert main["readinessProbe"]["httpGet"]["path"] == "/api/v2/monitor/health"
    # /api/v2/version answers without a database query or a login (Airflow 3.3.2).
    assert main["livenessProbe"]["httpGet"]["path"] == "/api/v2/version"
    assert main["startupProbe"]["httpGet"]["path"] == "/api/v2/version"


def test_dns_can_go_to_a_node_local_cache(scratch_repo):
    append_to_target(scratch_repo, "dev", "    network_policies:\n      dns:\n        namespace_labels: {kubernetes.io/metadata.name: kube-system}\n"
                                          "        pod_labels: {k8s-app: kube-dns}\n        ip_blocks: [169.254.20.10/32]\n")
    assert compile_in(scratch_repo, "-t", "dev").returncode == 0
    policy = load_manifests(scratch_repo / "compiled", "dev")["networkpolicy-airflow-dns.yaml"]["spec"]["egress"][0]
    assert policy["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}},
        {"ipBlock": {"cidr": "169.254.20.10/32"}},
    ]


# --- Secrets that roll their readers -----------------------------------------------------------

def pod_checksums(root: Path, env: str) -> dict[str, str]:
    return {name: obj["spec"]["template"]["metadata"].get("annotations", {}).get("checksum/secrets", "")
            for name, obj in load_manifests(root / "compiled", env).items() if obj["kind"] in ("Deployment", "StatefulSet")}


def test_a_rotated_ref_rolls_exactly_the_pods_that_read_it(scratch_repo):
    assert compile_in(scratch_repo, "-t", "dev").returncode == 0
    before = pod_checksums(scratch_repo, "dev")
    assert all(before.values()), before
    # A new JWT secret, as the README's rotation says: remove the ref, compile.
    (scratch_repo / "kapitan" / "refs" / "targets" / "dev" / "jwt_secret").unlink()
    assert compile_in(scratch_repo, "-t", "dev").returncode == 0  # writes the new ref
    assert compile_in(scratch_repo, "-t", "dev").returncode == 0  # and reads it
    after = pod_checksums(scratch_repo, "dev")
    rolled = {name for name in before if before[name] != after[name]}
    assert rolled == {"deployment-airflow-api-server.yaml", "deployment-airflow-scheduler.yaml"}


def test_the_database_password_rolls_postgres_and_its_clients(scratch_repo):
    assert compile_in(scratch_repo, "-t", "dev").returncode == 0
    before = pod_checksums(scratch_repo, "dev")
    (scratch_repo / "kapitan" / "refs" / "targets" / "dev" / "postgres_password").unlink()
    assert compile_in(scratch_repo, "-t", "dev").returncode == 0
    assert compile_in(scratch_repo, "-t", "dev").returncode == 0
    after = pod_checksums(scratch_repo, "dev")
    rolled = {name for name in before if before[name] != after[name]}
    assert {"statefulset-airflow-postgres.yaml", "deployment-airflow-scheduler.yaml", "deployment-airflow-triggerer.yaml",
            "deployment-airflow-dag-processor.yaml", "deployment-airflow-api-server.yaml"} == rolled


def test_raising_the_secrets_generation_rolls_every_reader(scratch_repo):
    assert compile_in(scratch_repo, "-t", "staging").returncode == 0
    before = pod_checksums(scratch_repo, "staging")
    append_to_target(scratch_repo, "staging", "    secrets:\n      generation: 2\n")
    assert compile_in(scratch_repo, "-t", "staging").returncode == 0
    after = pod_checksums(scratch_repo, "staging")
    assert all(before[name] != after[name] for name in before if before[name]), (before, after)


@pytest.fixture
def postgres_server() -> Iterator[tuple[Path, int]]:
    """A throwaway PostgreSQL 15 created like the official image does (the superuser named after
    the application user, trusted on the local socket, a password over TCP)."""
    with throwaway_postgres("-U airflow --auth-local=trust --auth-host=scram-sha-256 --pwfile={dir}/old",
                            files={"old": "old-password\n"}) as server:
        yield server


def test_the_bundled_database_takes_a_rotated_password_on_start(manifests: Callable, postgres_server):
    """The postStart script of the bundled PostgreSQL, run for real: after it, the role's password
    is the one in the mounted file, whatever the data directory was created with."""
    base, port = postgres_server
    script = manifests("dev")["configmap-airflow-postgres.yaml"]["data"]["set-password.sh"]
    sts = manifests("dev")["statefulset-airflow-postgres.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert sts["lifecycle"]["postStart"]["exec"]["command"] == ["sh", "/scripts/set-password.sh"]
    (base / "new").write_text("rotated-Pa$$word 'quoted'\n")
    assert "exit 1" not in script  # a failing postStart hook would kill PostgreSQL
    # The same script, on this server's socket directory.
    (base / "set-password.sh").write_text(script.replace("/var/run/postgresql", str(base)))
    env = {"PATH": f"{PG_BIN}:/usr/bin:/bin", "POSTGRES_USER": "airflow", "POSTGRES_PASSWORD_FILE": str(base / "new"), "PGPORT": str(port)}
    ran = subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", f"sh {base}/set-password.sh"] if os.geteuid() == 0
                         else ["sh", str(base / "set-password.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr

    def login(password: str) -> int:
        return subprocess.run([f"{PG_BIN}/psql", "-h", "127.0.0.1", "-p", str(port), "-U", "airflow", "-d", "postgres", "-c", "select 1"],
                              env={"PGPASSWORD": password, "PATH": "/usr/bin:/bin"}, capture_output=True).returncode

    assert login("rotated-Pa$$word 'quoted'") == 0
    assert login("old-password") != 0
    # The password never appears on a command line: the script reads it inside psql.
    assert "cat \"$POSTGRES_PASSWORD_FILE\"" in script and "PASSWORD :'password'" in script


# --- Removing an environment -----------------------------------------------------------------------

@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_removing_an_environment_removes_its_workloads_and_keeps_its_data(fresh_repo, manifests: Callable, env):
    app = yaml.safe_load((fresh_repo / "compiled" / env / "argocd" / f"application-airflow-{env}.yaml").read_text())
    # Deleting the Application (the app of apps prunes it when the environment leaves Git)
    # deletes what it applied...
    assert app["metadata"]["finalizers"] == ["resources-finalizer.argocd.argoproj.io"]
    # ...but the namespace and the claims, which hold the data.
    for obj in manifests(env).values():
        kept = obj["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-options", "")
        assert ("Delete=false" in kept) == (obj["kind"] in ("Namespace", "PersistentVolumeClaim")), obj["metadata"]["name"]
    bootstrap = yaml.safe_load((fresh_repo / "compiled" / "bootstrap" / "argocd" / "application-airflow-bootstrap.yaml").read_text())
    # The app of apps itself never cascades: deleting it must not delete every environment.
    assert "finalizers" not in bootstrap["metadata"]


def test_dags_promoted_from_the_environment_itself_are_refused(scratch_repo):
    target = scratch_repo / "inventory" / "targets" / "prod.yml"
    target.write_text(target.read_text().replace("promoted_from: staging", "promoted_from: prod"))
    refused(scratch_repo, "prod", 'parameters.airflow.dags.git_sync.promoted_from: "prod" is this environment itself')


def test_defaults_listed_after_a_feature_class_are_refused(scratch_repo):
    """airflow.defaults sets every choice again: listed after a feature class it would undo it."""
    target = scratch_repo / "inventory" / "targets" / "staging.yml"
    text = target.read_text().replace("  - airflow.executor.kubernetes\n", "")
    target.write_text(text.replace("  - common\n", "  - common\n  - airflow.executor.celery\n"))
    refused(scratch_repo, "staging", 'parameters.airflow.executor: is "KubernetesExecutor", but the class airflow.executor.celery chose "CeleryExecutor"',
            "list common and airflow.defaults first")


def test_a_target_overriding_a_class_choice_is_refused(scratch_repo):
    append_to_target(scratch_repo, "dev", "    database:\n      mode: external\n")
    refused(scratch_repo, "dev", 'parameters.airflow.database.mode: is "external", but the class airflow.database.bundled chose "bundled"')


def test_a_production_environment_whose_profile_used_to_choose_is_refused(scratch_repo):
    """An older staging target listing only the profile (which used to include the database and
    secrets classes) is refused, not switched to a bundled database and Kapitan refs."""
    target = scratch_repo / "inventory" / "targets" / "staging.yml"
    target.write_text(target.read_text().replace("  - airflow.database.external\n", "").replace("  - secrets.external-secrets\n", ""))
    refused(scratch_repo, "staging", "parameters.airflow.database.mode: no class chose it in this staging environment",
            "airflow.database.external or airflow.database.bundled")

