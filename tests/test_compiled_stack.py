"""What every environment compiles to: a complete, valid, hardened Airflow 3 deployment."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from conftest import ENVIRONMENTS, inventory_of, secret_file, validate_object

COMMON_FILES = {
    "configmap-airflow-config.yaml",
    "deployment-airflow-api-server.yaml",
    "service-airflow-api-server.yaml",
    "deployment-airflow-scheduler.yaml",
    "deployment-airflow-dag-processor.yaml",
    "deployment-airflow-triggerer.yaml",
    "serviceaccount-airflow-api-server.yaml",
    "serviceaccount-airflow-scheduler.yaml",
    "serviceaccount-airflow-dag-processor.yaml",
    "serviceaccount-airflow-triggerer.yaml",
    "serviceaccount-airflow-migrations.yaml",
}
KUBERNETES_EXECUTOR_FILES = {
    "configmap-airflow-pod-template.yaml",
    "serviceaccount-airflow-worker.yaml",
    "role-airflow-scheduler.yaml",
    "rolebinding-airflow-scheduler.yaml",
}
BUNDLED_DB_FILES = {
    "statefulset-airflow-postgres.yaml",
    "service-airflow-postgres.yaml",
}


def pod_specs(objects: dict[str, dict]) -> list[tuple[str, dict]]:
    specs = []
    for name, obj in objects.items():
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            specs.append((name, obj["spec"]["template"]["spec"]))
        if name == "configmap-airflow-pod-template.yaml":
            specs.append((name, yaml.safe_load(obj["data"]["pod_template.yaml"])["spec"]))
    return specs


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_environment_has_every_component(env, manifests, fresh_repo):
    objects = manifests(env)
    params = inventory_of(fresh_repo, env)["airflow"]
    expected = set(COMMON_FILES) | {f"namespace-airflow-{env}.yaml"} | {
        secret_file(fresh_repo, env, n) for n in ("airflow-secrets", "airflow-admin-passwords")}
    if params["executor"] == "KubernetesExecutor":
        expected |= KUBERNETES_EXECUTOR_FILES
    if params["database"]["mode"] == "bundled":
        expected |= BUNDLED_DB_FILES | {secret_file(fresh_repo, env, "airflow-metadata-db")}
    assert expected <= set(objects), sorted(expected - set(objects))
    assert [n for n in objects if n.startswith("job-airflow-db-migrate-")], "no migration Job"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_object_validates_strictly_against_the_declared_kubernetes_version(env, manifests, fresh_repo):
    version = inventory_of(fresh_repo, env)["airflow"]["kubernetes_version"]
    for name, obj in manifests(env).items():
        validate_object(obj, version)
        if name == "configmap-airflow-pod-template.yaml":
            kubernetes_validate.validate(yaml.safe_load(obj["data"]["pod_template.yaml"]), version, strict=True)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_one_object_per_file_named_by_kind_and_name(env, manifests):
    for name, obj in manifests(env).items():
        assert name == f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == f"airflow-{env}"


def test_environments_differ_like_real_ones(manifests):
    dev, staging, prod = (manifests(e) for e in ENVIRONMENTS)
    assert "statefulset-airflow-postgres.yaml" in dev and "statefulset-airflow-postgres.yaml" not in prod
    assert "statefulset-airflow-postgres.yaml" not in staging
    assert prod["deployment-airflow-api-server.yaml"]["spec"]["replicas"] == 2
    assert prod["deployment-airflow-scheduler.yaml"]["spec"]["replicas"] == 2
    assert dev["deployment-airflow-scheduler.yaml"]["spec"]["replicas"] == 1
    assert {"poddisruptionbudget-airflow-api-server.yaml", "poddisruptionbudget-airflow-scheduler.yaml"} <= set(prod)
    assert "executor = LocalExecutor" in dev["configmap-airflow-config.yaml"]["data"]["airflow.cfg"]
    assert "executor = KubernetesExecutor" in staging["configmap-airflow-config.yaml"]["data"]["airflow.cfg"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_pod_is_hardened_and_sized(env, manifests):
    for name, spec in pod_specs(manifests(env)):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in spec["containers"] + spec.get("initContainers", []):
            ctx = container["securityContext"]
            where = f"{name}: {container['name']}"
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["capabilities"] == {"drop": ["ALL"]}, where
            assert ctx["runAsNonRoot"] is True, where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert container["resources"]["requests"] and container["resources"]["limits"], where
            if container["image"].startswith("apache/airflow"):
                assert ctx["runAsUser"] == 50000, where


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_only_processes_that_talk_to_the_kubernetes_api_get_a_token(env, manifests):
    """The KubernetesExecutor's scheduler (worker pods) and api-server (logs of running tasks),
    the triggerer (deferred KubernetesPodOperator tasks) and the cleanup CronJob; nothing else."""
    objects = manifests(env)
    k8s_executor = "role-airflow-scheduler.yaml" in objects
    with_token = {"deployment-airflow-triggerer.yaml", "cronjob-airflow-cleanup-pods.yaml"}
    if k8s_executor:
        with_token |= {"deployment-airflow-scheduler.yaml", "deployment-airflow-api-server.yaml"}
    for name, spec in pod_specs(objects):
        assert spec["automountServiceAccountToken"] is (name in with_token), name


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_long_running_components_have_probes_labels_and_config_checksum(env, manifests):
    for name, obj in manifests(env).items():
        # Airflow's own processes (not the statsd-exporter or PgBouncer next to them).
        if obj["kind"] != "Deployment" or obj["metadata"]["labels"]["app.kubernetes.io/component"] in ("statsd", "pgbouncer"):
            continue
        template = obj["spec"]["template"]
        labels = template["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "airflow"
        assert labels["app.kubernetes.io/instance"] == env
        assert labels["app.kubernetes.io/managed-by"] == "kapitan"
        assert re.fullmatch(r"[0-9a-f]{64}", template["metadata"]["annotations"]["checksum/airflow-config"])
        main = template["spec"]["containers"][0]
        assert "livenessProbe" in main, name
        assert template["spec"]["initContainers"][0]["args"][:2] == ["db", "check-migrations"], name
    api = manifests(env)["deployment-airflow-api-server.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/api/v2/monitor/health"


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_scheduler_role_is_namespaced_and_minimal(env, manifests):
    objects = manifests(env)
    assert not [o for o in objects.values() if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    role = objects["role-airflow-scheduler.yaml"]
    rules = {tuple(r["resources"]): set(r["verbs"]) for r in role["rules"]}
    assert rules[("pods",)] == {"create", "watch", "list", "get", "patch", "delete"}
    assert rules[("pods/log",)] <= {"get", "list"}
    assert all(r["apiGroups"] == [""] for r in role["rules"])
    assert set(rules) <= {("pods",), ("pods/log",), ("events",)}
    assert rules.get(("events",), {"list"}) <= {"list"}
    binding = objects["rolebinding-airflow-scheduler.yaml"]
    assert binding["roleRef"]["kind"] == "Role"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "airflow-scheduler", "namespace": f"airflow-{env}"}]


def test_migration_job_is_renamed_by_a_new_image_or_job_spec_and_nothing_else(scratch_repo, manifests):
    from conftest import compile_in, load_manifests
    before = [n for n in manifests("prod") if n.startswith("job-")]
    target = scratch_repo / "inventory" / "targets" / "prod.yml"
    target.write_text(target.read_text() + "    scheduler:\n      replicas: 3\n    config:\n      core:\n        parallelism: 12\n")
    assert compile_in(scratch_repo, "-t", "prod").returncode == 0
    assert [n for n in load_manifests(scratch_repo / "compiled", "prod") if n.startswith("job-")] == before
    target.write_text(target.read_text() + "    image:\n      tag: 3.3.2-python3.12\n")
    assert compile_in(scratch_repo, "-t", "prod").returncode == 0
    after = [n for n in load_manifests(scratch_repo / "compiled", "prod") if n.startswith("job-")]
    assert len(after) == 1 and after != before
    # The Job's pod template is immutable: a change to it must come with a new name.
    target.write_text(target.read_text() + "    migrations:\n      resources:\n        requests: {cpu: 200m, memory: 1Gi}\n        limits: {cpu: '1', memory: 1Gi}\n")
    assert compile_in(scratch_repo, "-t", "prod").returncode == 0
    resized = [n for n in load_manifests(scratch_repo / "compiled", "prod") if n.startswith("job-")]
    assert len(resized) == 1 and resized not in (before, after)


def test_migration_job_has_no_helm_hook_and_no_ttl(manifests):
    for env in ENVIRONMENTS:
        for name, obj in manifests(env).items():
            assert "helm.sh/hook" not in str(obj.get("metadata", {}).get("annotations", {}))
            if obj["kind"] == "Job":
                assert "ttlSecondsAfterFinished" not in obj["spec"]
            if name.startswith("job-airflow-db-migrate-"):
                assert obj["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "migrate"]


def test_bundled_postgres_keeps_its_data_on_a_volume(manifests):
    sts = manifests("dev")["statefulset-airflow-postgres.yaml"]
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["apiVersion"] == "v1" and claim["kind"] == "PersistentVolumeClaim"
    mounts = sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "data", "mountPath": "/var/lib/postgresql/data"} in mounts


def test_git_sync_sidecar_and_worker_init_container_track_the_inventory_repo(manifests, fresh_repo):
    git = inventory_of(fresh_repo, "prod")["airflow"]["dags"]["git_sync"]
    objects = manifests("prod")
    template = yaml.safe_load(objects["configmap-airflow-pod-template.yaml"]["data"]["pod_template.yaml"])
    containers = {
        "dag-processor": objects["deployment-airflow-dag-processor.yaml"]["spec"]["template"]["spec"]["containers"],
        "triggerer": objects["deployment-airflow-triggerer.yaml"]["spec"]["template"]["spec"]["containers"],
        "worker-init": template["spec"]["initContainers"],
    }
    for where, cs in containers.items():
        sync = next(c for c in cs if c["name"].startswith("git-sync"))
        env = {e["name"]: e.get("value") for e in sync["env"]}
        assert env["GITSYNC_REPO"] == git["repo"] and env["GITSYNC_REF"] == git["ref"], where
        assert env["GITSYNC_SSH_KNOWN_HOSTS"] == "true", where
    assert {e["name"]: e.get("value") for e in template["spec"]["initContainers"][0]["env"]}["GITSYNC_ONE_TIME"] == "true"
    cfg = objects["configmap-airflow-config.yaml"]["data"]["airflow.cfg"]
    assert f"dags_folder = /opt/airflow/dags/repo/{git['sub_path']}" in cfg
    assert "known_hosts" in objects["configmap-airflow-git-sync-known-hosts.yaml"]["data"]


def test_pvc_dag_mode_mounts_a_read_only_claim(scratch_repo):
    from conftest import compile_in, load_manifests
    target = scratch_repo / "inventory" / "targets" / "staging.yml"
    target.write_text(target.read_text().replace("  - airflow.dags.git-sync\n", "  - airflow.dags.pvc\n")
                      .replace("    dags:\n", "    dags:\n      pvc:\n        storage_class: standard-rwx\n"))
    result = compile_in(scratch_repo, "-t", "staging")
    assert result.returncode == 0, result.stderr
    objects = load_manifests(scratch_repo / "compiled", "staging")
    assert objects["persistentvolumeclaim-airflow-dags.yaml"]["spec"]["accessModes"] == ["ReadWriteMany"]
    spec = objects["deployment-airflow-dag-processor.yaml"]["spec"]["template"]["spec"]
    dags = next(v for v in spec["volumes"] if v["name"] == "dags")
    assert dags["persistentVolumeClaim"] == {"claimName": "airflow-dags", "readOnly": True}
    assert not [c for c in spec["containers"] if c["name"] == "git-sync"]
    assert "dags_folder = /opt/airflow/dags\n" in objects["configmap-airflow-config.yaml"]["data"]["airflow.cfg"]


def test_any_config_key_set_in_the_inventory_lands_in_airflow_cfg(scratch_repo):
    from conftest import compile_in, load_manifests
    target = scratch_repo / "inventory" / "targets" / "dev.yml"
    target.write_text(target.read_text() + "    config:\n      smtp:\n        smtp_host: mail.example.com\n      core:\n        parallelism: 12\n")
    assert compile_in(scratch_repo, "-t", "dev").returncode == 0
    cfg = load_manifests(scratch_repo / "compiled", "dev")["configmap-airflow-config.yaml"]["data"]["airflow.cfg"]
    assert "[smtp]\nsmtp_host = mail.example.com\n" in cfg
    assert "parallelism = 12\n" in cfg


def test_api_server_service_becomes_a_load_balancer_with_one_value(scratch_repo):
    from conftest import compile_in, load_manifests
    target = scratch_repo / "inventory" / "targets" / "dev.yml"
    target.write_text(target.read_text() + "    api_server:\n      service:\n        type: LoadBalancer\n")
    assert compile_in(scratch_repo, "-t", "dev").returncode == 0
    svc = load_manifests(scratch_repo / "compiled", "dev")["service-airflow-api-server.yaml"]
    assert svc["spec"]["type"] == "LoadBalancer" and svc["spec"]["ports"][0]["port"] == 8080


def test_worker_pods_do_not_wait_for_a_database_they_cannot_reach(manifests):
    for env in ("staging", "prod"):
        text = manifests(env)["configmap-airflow-pod-template.yaml"]["data"]["pod_template.yaml"]
        base = yaml.safe_load(text)["spec"]["containers"][0]
        env_vars = {e["name"]: e.get("value") for e in base["env"]}
        assert env_vars["CONNECTION_CHECK_MAX_COUNT"] == "0"
        assert not [e for e in base["env"] if "valueFrom" in e], "workers get no secrets"


def test_admin_password_file_is_written_owner_only_from_the_secret(manifests):
    spec = manifests("dev")["deployment-airflow-api-server.yaml"]["spec"]["template"]["spec"]
    writer = next(c for c in spec["initContainers"] if c["name"] == "write-admin-passwords")
    assert "0o600" in writer["command"][2]
    # The password reaches it as a file of the Secret, never as an environment variable.
    assert "env" not in writer and writer["command"][-1] == "/opt/airflow/admin-password/admin-password"
    assert {"name": "admin-password", "secret": {"secretName": "airflow-admin-passwords", "defaultMode": 288}} in spec["volumes"]
    cfg = manifests("dev")["configmap-airflow-config.yaml"]["data"]["airflow.cfg"]
    assert "simple_auth_manager_passwords_file = /opt/airflow/auth/simple_auth_manager_passwords.json" in cfg


def test_kubernetes_executor_task_logs_outlive_worker_pods(manifests):
    for env in ("staging", "prod"):
        assert manifests(env)["persistentvolumeclaim-airflow-logs.yaml"]["spec"]["accessModes"] == ["ReadWriteMany"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_kubectl_kustomize_builds_every_object_of_the_environment(env, fresh_repo, manifests):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from airflow_gitops.validate.kustomize_build import kubectl as kubectl_path

    kubectl = kubectl_path()
    from conftest import MANIFEST_GROUPS

    directory = fresh_repo / "compiled" / env / "manifests"
    assert yaml.safe_load((directory / "kustomization.yaml").read_text())["resources"] == list(MANIFEST_GROUPS)
    listed = [name for group in MANIFEST_GROUPS
              for name in yaml.safe_load((directory / group / "kustomization.yaml").read_text())["resources"]]
    assert sorted(listed) == sorted(manifests(env))
    built = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    objects = [o for o in yaml.safe_load_all(built.stdout) if o]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objects) == sorted(
        (o["kind"], o["metadata"]["name"]) for o in manifests(env).values())


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_sync_waves_order_namespace_config_migrations_then_workloads(env, manifests, fresh_repo):
    wave = {name: int(o["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) for name, o in manifests(env).items()}
    job = next(w for n, w in wave.items() if n.startswith("job-"))
    assert wave[f"namespace-airflow-{env}.yaml"] < wave[secret_file(fresh_repo, env, "airflow-secrets")] < job
    assert wave["configmap-airflow-config.yaml"] < job
    # Airflow's processes after the migrations; what they depend on (statsd-exporter, PgBouncer) before.
    dependencies = ("deployment-airflow-statsd.yaml", "deployment-airflow-pgbouncer.yaml")
    assert all(wave[n] > job for n in wave if n.startswith("deployment-") and n not in dependencies)
    assert all(wave[n] < job for n in dependencies if n in wave)
    if "statefulset-airflow-postgres.yaml" in wave:
        assert wave["statefulset-airflow-postgres.yaml"] < job
