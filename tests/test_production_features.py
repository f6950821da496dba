"""Production features (CeleryExecutor, autoscaling, PgBouncer, routes, metrics, remote logging,
housekeeping, declared connections/variables/pools, escape hatches): every feature class in
inventory/classes/airflow compiles into a target, validates strictly, builds with kustomize and
passes checkov with no failure, and the objects say what the feature promises."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conftest import REPO, compile_in, copy_repo, kapitan, load_manifests, manifest_reader, validate_object
from local_postgres import create_database, postgres, psql  # noqa: F401  (postgres: a throwaway PostgreSQL 15)

CLI = str(Path(sys.executable).with_name("airflow-gitops"))

# The environments' classes without an executor (each target below picks its own: a second
# executor class would be refused as a clash of choices).
BASE = ["common", "airflow.defaults", "airflow.dags.git-sync", "dag-repository", "gitops-repository"]
DEV_BASE = BASE + ["airflow.database.bundled", "profiles.dev"]
# Outside dev, sign-in is chosen by a class (the simple auth manager is refused).
STAGING_NO_AUTH = BASE + ["airflow.database.external", "secrets.external-secrets", "airflow.logs.pvc", "profiles.staging"]
STAGING_BASE = STAGING_NO_AUTH + ["airflow.auth.fab-database"]
PROD_BASE = BASE + ["airflow.database.external", "secrets.external-secrets", "airflow.logs.pvc", "profiles.prod", "airflow.auth.fab-database"]
DEV = DEV_BASE + ["airflow.executor.local"]
STAGING = STAGING_BASE + ["airflow.executor.kubernetes"]
# What a non-dev environment must name: its URL and its ReadWriteMany storage class.
PRODUCTION_SETTINGS = {"api_server": {"base_url": "https://airflow.acme.internal"},
                       "logs": {"pvc": {"storage_class": "standard-rwx"}}}
EXTERNAL_DB_PARTS = {**PRODUCTION_SETTINGS, "database": {"external": {
    "host": "airflow-db.example.internal", "database": "airflow", "user": "airflow", "password_key": "password",
}}}

# A sidecar as a user would add one (checkov wants it hardened, probed and sized like ours).
SIDECAR = {
    "name": "token-refresher", "image": "registry.example.com/token-refresher:1.4.0", "imagePullPolicy": "Always",
    "args": ["--interval", "5m"],
    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
    "readinessProbe": {"httpGet": {"path": "/ready", "port": 8090}}, "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8090}},
}
INIT_CONTAINER = {k: v for k, v in SIDECAR.items() if not k.endswith("Probe")} | {"name": "warm-up", "args": ["--once"]}

# Target name -> (classes, parameters.airflow overrides). Together they include every feature
# class; each target is one realistic combination.
FEATURE_TARGETS: dict[str, tuple[list[str], dict]] = {
    # Celery on a small cluster: bundled PostgreSQL behind PgBouncer, bundled Redis, KEDA scaling
    # to zero, Flower, StatsD metrics with a ServiceMonitor; connections from Kapitan refs.
    "celery-dev": (DEV_BASE + ["airflow.executor.celery", "airflow.logs.pvc", "airflow.celery.flower", "airflow.celery.keda",
                          "airflow.database.pgbouncer", "airflow.metrics.statsd", "airflow.metrics.service-monitor",
                          "airflow.objects.example"], {"logs": {"pvc": {"storage_class": "nfs-client"}}}),
    # Celery and Kubernetes executors in production: external database behind PgBouncer, external
    # broker, HPA-scaled workers and API server, HTTPRoute, spread replicas, S3 logs with
    # workload identity, OpenTelemetry, declared objects from External Secrets, escape hatches.
    "celery-prod": (PROD_BASE + ["airflow.executor.celery-kubernetes", "airflow.celery.external-broker", "airflow.celery.hpa",
                            "airflow.database.pgbouncer", "airflow.api-server.autoscaling", "airflow.api-server.http-route",
                            "airflow.placement.spread", "airflow.logs.remote-s3", "airflow.metrics.otel",
                            "airflow.objects.example", "airflow.extras.example"],
                    {**EXTERNAL_DB_PARTS, "security": {"service_account_annotations": {
                        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/airflow-logs"}},
                     "triggerer": {"extra_containers": [SIDECAR], "extra_init_containers": [INIT_CONTAINER]}}),
    # KEDA against an external database.
    "celery-keda-external": (STAGING_BASE + ["airflow.executor.celery", "airflow.celery.keda"], EXTERNAL_DB_PARTS),
    # KubernetesExecutor with an Ingress and logs in GCS from a key file.
    "kubernetes-gcs": (STAGING + ["airflow.api-server.ingress", "airflow.logs.remote-gcs", "airflow.metrics.statsd"], PRODUCTION_SETTINGS),
    "kubernetes-elasticsearch": (STAGING + ["airflow.logs.remote-elasticsearch"], PRODUCTION_SETTINGS),
    "local-opensearch": (DEV + ["airflow.logs.remote-opensearch"], {}),
    # Sign-in (tests/test_sign_in.py runs them for real): the OAuth presets side by side, LDAP over
    # StartTLS with a CA from a ConfigMap, and the Keycloak auth manager with its setup Job.
    "auth-oauth": (STAGING_NO_AUTH + ["airflow.executor.kubernetes", "airflow.auth.fab-oauth"], {**PRODUCTION_SETTINGS, "auth": {"fab": {
        "oauth": {"providers": [
            {"name": "sso", "type": "oidc", "client_id": "airflow", "client_secret": {"ref": "auth/sso-client-secret"},
             "discovery_url": "https://sso.acme.internal:8443/.well-known/openid-configuration", "groups_claim": "roles"},
            {"name": "google", "type": "google", "client_id": "airflow.apps.googleusercontent.com",
             "client_secret": {"secret_name": "google-oauth", "secret_key": "client-secret"}},
            {"name": "github", "type": "github", "client_id": "Iv1.airflow", "client_secret": {"ref": "auth/github-client-secret"}},
            {"name": "entra", "type": "entra", "client_id": "00000000-0000-0000-0000-000000000000", "tenant_id": "acme.onmicrosoft.com",
             "client_secret": {"ref": "auth/entra-client-secret"}},
            {"name": "okta", "type": "okta", "client_id": "0oa1airflow", "domain": "acme.okta.com", "client_secret": {"ref": "auth/okta-client-secret"}},
            {"name": "keycloak", "type": "keycloak", "client_id": "airflow", "server_url": "https://keycloak.acme.internal", "realm": "acme",
             "client_secret": {"ref": "auth/keycloak-client-secret"}},
        ]},
        "roles_mapping": {"airflow-admins": ["Admin"], "data-engineers": ["User"]},
        "default_role": "Viewer",
    }}}),
    "auth-ldap": (STAGING_NO_AUTH + ["airflow.executor.kubernetes", "airflow.auth.fab-ldap"], {**PRODUCTION_SETTINGS, "auth": {"fab": {
        "ldap": {"url": "ldap://ldap.acme.internal", "start_tls": True, "ca": {"config_map": "acme-ca", "key": "ca.crt"},
                 "bind_dn": "cn=airflow,ou=services,dc=acme,dc=internal", "bind_password": {"ref": "auth/ldap-bind-password"},
                 "search_base": "ou=people,dc=acme,dc=internal", "search_filter": "", "uid_attribute": "uid", "group_attribute": "memberOf",
                 "first_name_attribute": "givenName", "last_name_attribute": "sn", "email_attribute": "mail"},
        "roles_mapping": {"cn=airflow-admins,ou=groups,dc=acme,dc=internal": ["Admin"]},
        "default_role": "",
    }}}),
    "auth-keycloak": (STAGING_NO_AUTH + ["airflow.executor.kubernetes", "airflow.auth.keycloak"], {**PRODUCTION_SETTINGS, "auth": {"keycloak": {
        "server_url": "https://sso.acme.internal", "realm": "acme", "client_id": "airflow",
        "client_secret": {"ref": "auth/keycloak-client-secret"},
        "setup_job": {"enabled": True, "admin_username": "airflow-setup", "admin_password": {"ref": "auth/keycloak-admin-password"},
                      "admin_realm": "master", "admin_client_id": "admin-cli"},
    }}}),
}


def write_target(root: Path, name: str, classes: list[str], airflow: dict) -> None:
    body = {"classes": classes, "parameters": {"airflow": airflow} if airflow else {}}
    (root / "inventory" / "targets" / f"{name}.yml").write_text(yaml.safe_dump(body, sort_keys=False))


@pytest.fixture(scope="module")
def features_repo(tmp_path_factory) -> Path:
    root = copy_repo(tmp_path_factory.mktemp("features"))
    (root / ".checkov.yaml").write_bytes((REPO / ".checkov.yaml").read_bytes())
    for name, (classes, airflow) in FEATURE_TARGETS.items():
        write_target(root, name, classes, airflow)
    # What a user does once for a connection password held as a Kapitan ref.
    secret = root / "warehouse-password.txt"
    secret.write_text("s3cret-warehouse")
    written = kapitan(root, "refs", "--write", "base64:targets/celery-dev/connections/warehouse-password", "-f", str(secret))
    assert written.returncode == 0, written.stderr
    # Twice, as a plain `kapitan compile` of new environments needs: the first writes their refs,
    # the second puts the refs' digests into the pods' rollout checksums.
    for _ in range(2):
        result = compile_in(root)
        assert result.returncode == 0, result.stdout + result.stderr
    return root


@pytest.fixture(scope="module")
def objects_of(features_repo) -> Callable[[str], dict[str, dict]]:
    return manifest_reader(features_repo / "compiled")


def test_every_feature_class_is_used_by_a_feature_target():
    classes = {".".join(p.relative_to(REPO / "inventory" / "classes").with_suffix("").parts)
               for p in (REPO / "inventory" / "classes" / "airflow").rglob("*.yml")}
    used = {c for classes_, _ in FEATURE_TARGETS.values() for c in classes_}
    used |= {"airflow.executor.kubernetes", "airflow.executor.local", "airflow.database.bundled", "airflow.database.external",
             "airflow.dags.bundle", "airflow.dags.pvc", "airflow.logs.pvc", "airflow.auth.simple"}  # covered by the environments and other tests
    assert sorted(classes - used) == []


@pytest.mark.parametrize("target", sorted(FEATURE_TARGETS))
def test_feature_target_validates_strictly(target, objects_of):
    for obj in objects_of(target).values():
        validate_object(obj, "1.33")


@pytest.mark.slow
def test_feature_targets_pass_validate_with_no_checkov_failure(features_repo, monkeypatch):
    monkeypatch.setenv("AIRFLOW_GITOPS_CACHE", str(REPO / ".cache"))
    args = [CLI, "validate", "--json", "--quiet"]
    for target in FEATURE_TARGETS:
        args += ["--target", target]
    for check in ("inventory", "up-to-date", "kubernetes-schemas", "kustomize", "security-policy", "secrets", "airflow"):
        args += ["--check", check]
    result = subprocess.run(args, cwd=features_repo, capture_output=True, text=True)
    report = json.loads(result.stdout)
    failures = {(check, target): outcome["reasons"]
                for check, per_target in report["checks"].items()
                for target, outcome in per_target.items() if outcome["status"] == "fail"}
    assert failures == {}, json.dumps({f"{c} {t}": r for (c, t), r in failures.items()}, indent=1)
    assert result.returncode == 0


def container(obj: dict, name: str) -> dict:
    spec = obj["spec"]["template"]["spec"] if "template" in obj["spec"] else obj["spec"]
    return next(c for c in spec["containers"] + spec.get("initContainers", []) if c["name"] == name)


def env_of(c: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in c.get("env", [])}


def test_celery_workers_are_a_stateful_set_that_drains_running_tasks(objects_of):
    # SIGTERM to Celery's main process only (dumb-init would signal the task processes too).
    assert env_of(container(objects_of("celery-dev")["statefulset-airflow-celery-worker.yaml"], "worker"))["DUMB_INIT_SETSID"] == "0"
    objs = objects_of("celery-dev")
    workers = objs["statefulset-airflow-celery-worker.yaml"]
    pod = workers["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 600
    assert workers["spec"]["serviceName"] == "airflow-celery-worker"
    worker = container(workers, "worker")
    assert worker["args"] == ["celery", "worker", "--queues", "default"]
    assert {c["name"] for c in pod["containers"]} == {"worker", "git-sync", "log-groomer"}
    # KEDA owns the replica count: GitOps must not reset it.
    assert "replicas" not in workers["spec"]
    assert "worker_concurrency = 16" in objs["configmap-airflow-config.yaml"]["data"]["airflow.cfg"]
    assert "[operators]\ndefault_queue = default" in objs["configmap-airflow-config.yaml"]["data"]["airflow.cfg"]


def test_broker_and_result_backend_come_from_secret_files(objects_of, tmp_path):
    env = env_of(container(objects_of("celery-dev")["deployment-airflow-scheduler.yaml"], "scheduler"))
    # What Airflow runs for these options, with the files where the pod has them.
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "redis-password").write_text("r3d1s-pw\n")
    (secrets / "database-password").write_text("db:p@ss/w%rd\n")

    def run(command: str) -> str:
        return subprocess.run(shlex.split(command.replace("/opt/airflow/secrets", str(secrets))),
                              capture_output=True, text=True, check=True).stdout

    assert run(env["AIRFLOW__CELERY__BROKER_URL_CMD"]) == "redis://:r3d1s-pw@airflow-redis.airflow-celery-dev.svc.cluster.local:6379/0"
    # Percent-encoded: an external database's password may hold any character.
    assert run(env["AIRFLOW__CELERY__RESULT_BACKEND_CMD"]) == (
        "db+postgresql+psycopg2://airflow:db%3Ap%40ss%2Fw%25rd@airflow-pgbouncer.airflow-celery-dev.svc.cluster.local:6543/airflow")
    external = env_of(container(objects_of("celery-prod")["deployment-airflow-scheduler.yaml"], "scheduler"))
    assert external["AIRFLOW__CELERY__BROKER_URL_CMD"] == "cat /opt/airflow/secrets/celery-broker-url"


def test_bundled_redis_keeps_its_data_and_its_password_out_of_the_command_line(objects_of):
    objs = objects_of("celery-dev")
    redis = objs["statefulset-airflow-redis.yaml"]
    assert redis["spec"]["volumeClaimTemplates"][0]["kind"] == "PersistentVolumeClaim"
    assert container(redis, "redis")["command"] == ["redis-server", "/etc/redis/redis.conf"]
    assert "include /etc/redis/auth/auth.conf" in objs["configmap-airflow-redis.yaml"]["data"]["redis.conf"]
    secret = objs["secret-airflow-celery.yaml"]["stringData"]
    assert set(secret) == {"redis-password", "flower-password"}
    assert all(v.startswith("?{base64:targets/celery-dev/") for v in secret.values())


def test_keda_counts_celery_tasks_of_the_workers_queues(objects_of):
    scaled = objects_of("celery-dev")["scaledobject-airflow-celery-worker.yaml"]["spec"]
    assert scaled["minReplicaCount"] == 0 and scaled["scaleTargetRef"]["kind"] == "StatefulSet"
    query = scaled["triggers"][0]["metadata"]["query"]
    assert "queue IN ('default')" in query and "/ 16)" in query
    # Celery is the default executor here: tasks with no executor recorded are Celery's.
    assert "executor IS NULL" in query
    external = objects_of("celery-keda-external")["scaledobject-airflow-celery-worker.yaml"]["spec"]["triggers"][0]["metadata"]
    assert external["host"] == "airflow-db.example.internal" and external["sslmode"] == "require"


def test_two_executors_give_worker_pods_and_celery_workers(objects_of):
    objs = objects_of("celery-prod")
    assert "executor = CeleryExecutor,KubernetesExecutor" in objs["configmap-airflow-config.yaml"]["data"]["airflow.cfg"]
    assert "configmap-airflow-pod-template.yaml" in objs and "statefulset-airflow-celery-worker.yaml" in objs
    assert "role-airflow-scheduler.yaml" in objs
    assert objs["horizontalpodautoscaler-airflow-celery-worker.yaml"]["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"


def test_pgbouncer_pools_airflow_while_migrations_connect_directly(objects_of):
    objs = objects_of("celery-prod")
    ini = objs["configmap-airflow-pgbouncer.yaml"]["data"]["pgbouncer.ini"]
    assert "airflow = host=airflow-db.example.internal port=5432 dbname=airflow" in ini
    assert "server_tls_sslmode = require" in ini
    scheduler = env_of(container(objs["deployment-airflow-scheduler.yaml"], "scheduler"))
    assert "@airflow-pgbouncer.airflow-celery-prod.svc.cluster.local:6543/airflow" in scheduler["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"]
    job = next(o for n, o in objs.items() if n.startswith("job-airflow-db-migrate-"))
    assert env_of(container(job, "db-migrate"))["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"] == "cat /opt/airflow/secrets/sql-alchemy-conn"


def test_autoscaled_api_server_has_a_budget_and_no_fixed_replicas(objects_of):
    objs = objects_of("celery-prod")
    assert "replicas" not in objs["deployment-airflow-api-server.yaml"]["spec"]
    assert objs["horizontalpodautoscaler-airflow-api-server.yaml"]["spec"]["minReplicas"] == 2
    assert "poddisruptionbudget-airflow-api-server.yaml" in objs


def test_every_multi_replica_component_has_a_disruption_budget_and_single_ones_none(objects_of):
    for target in FEATURE_TARGETS:
        objs = objects_of(target)
        for obj in objs.values():
            if obj["kind"] in ("Deployment", "StatefulSet") and obj["spec"].get("replicas", 2) > 1:
                assert f"poddisruptionbudget-{obj['metadata']['name']}.yaml" in objs, (target, obj["metadata"]["name"])
            if obj["kind"] == "Deployment" and obj["spec"].get("replicas") == 1:
                assert f"poddisruptionbudget-{obj['metadata']['name']}.yaml" not in objs, (target, obj["metadata"]["name"])


def test_replicas_spread_over_nodes_and_zones_when_asked(objects_of):
    spec = objects_of("celery-prod")["deployment-airflow-scheduler.yaml"]["spec"]["template"]["spec"]
    keys = [c["topologyKey"] for c in spec["topologySpreadConstraints"]]
    assert keys == ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
    assert all(c["whenUnsatisfiable"] == "ScheduleAnyway" for c in spec["topologySpreadConstraints"])


def test_ingress_and_http_route_send_traffic_to_the_api_server(objects_of):
    ingress = objects_of("kubernetes-gcs")["ingress-airflow-api-server.yaml"]["spec"]
    assert ingress["tls"] == [{"hosts": ["airflow-kubernetes-gcs.example.com"], "secretName": "airflow-kubernetes-gcs-tls"}]
    assert ingress["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "airflow-api-server"
    route = objects_of("celery-prod")["httproute-airflow-api-server.yaml"]["spec"]
    assert route["parentRefs"] == [{"name": "shared-gateway", "namespace": "gateway-system", "sectionName": "https"}]
    assert route["rules"][0]["backendRefs"] == [{"name": "airflow-api-server", "port": 8080}]


def test_statsd_exporter_maps_airflow_names_and_is_scraped(objects_of):
    objs = objects_of("celery-dev")
    cfg = objs["configmap-airflow-config.yaml"]["data"]["airflow.cfg"]
    assert "statsd_host = airflow-statsd.airflow-celery-dev.svc.cluster.local" in cfg
    # Tags travel as InfluxDB-style fields the exporter makes labels of; no legacy dotted names.
    assert "statsd_influxdb_enabled = True" in cfg and "legacy_names_on = False" in cfg
    assert yaml.safe_load(objs["configmap-airflow-statsd.yaml"]["data"]["mappings.yml"]) == {"mappings": []}
    monitor = objs["servicemonitor-airflow-statsd.yaml"]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_otel_and_remote_logging_presets_set_airflow_cfg(objects_of):
    prod = objects_of("celery-prod")["configmap-airflow-config.yaml"]["data"]["airflow.cfg"]
    assert "otel_on = True" in prod and "remote_base_log_folder = s3://example-airflow-logs/celery-prod" in prod
    assert "remote_log_conn_id = aws_default" in prod
    otel = env_of(container(objects_of("celery-prod")["deployment-airflow-scheduler.yaml"], "scheduler"))
    assert otel["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://opentelemetry-collector.observability.svc.cluster.local:4318"
    annotations = objects_of("celery-prod")["serviceaccount-airflow-scheduler.yaml"]["metadata"]["annotations"]
    assert annotations["eks.amazonaws.com/role-arn"] == "arn:aws:iam::123456789012:role/airflow-logs"
    gcs = objects_of("kubernetes-gcs")
    scheduler = container(gcs["deployment-airflow-scheduler.yaml"], "scheduler")
    assert env_of(scheduler)["GOOGLE_APPLICATION_CREDENTIALS"] == "/opt/airflow/remote-logging/key.json"
    template = yaml.safe_load(gcs["configmap-airflow-pod-template.yaml"]["data"]["pod_template.yaml"])
    assert env_of(template["spec"]["containers"][0])["GOOGLE_APPLICATION_CREDENTIALS"] == "/opt/airflow/remote-logging/key.json"
    es = objects_of("kubernetes-elasticsearch")["configmap-airflow-config.yaml"]["data"]["airflow.cfg"]
    assert "[elasticsearch]\nhost = https://elasticsearch.logging.svc.cluster.local:9200" in es
    assert "airflow-to-log-store" in str(objects_of("kubernetes-elasticsearch").keys())


def test_housekeeping_cron_jobs_clean_the_database_and_leftover_worker_pods(objects_of):
    objs = objects_of("kubernetes-gcs")
    clean = objs["cronjob-airflow-db-clean.yaml"]["spec"]
    assert clean["concurrencyPolicy"] == "Forbid"
    assert '-90 days' in clean["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][2]
    pods = objs["cronjob-airflow-cleanup-pods.yaml"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pods["containers"][0]["args"] == ["kubernetes", "cleanup-pods", "--namespace", "airflow-kubernetes-gcs"]
    assert objs["role-airflow-cleanup-pods.yaml"]["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["delete", "get", "list"]}]
    assert "cronjob-airflow-cleanup-pods.yaml" not in objects_of("local-opensearch")


def test_declared_objects_are_applied_by_a_job_with_secret_values_from_files(objects_of):
    for target, secret_kind in (("celery-dev", "secret"), ("celery-prod", "externalsecret")):
        objs = objects_of(target)
        spec = json.loads(objs["configmap-airflow-objects.yaml"]["data"]["objects.json"])
        assert spec["connections"]["warehouse"]["password_file"] == "/opt/airflow/object-secrets/ref-connections__warehouse-password"
        assert "password" not in spec["connections"]["warehouse"]
        assert spec["pools"]["warehouse"]["slots"] == 4
        job = next(o for n, o in objs.items() if n.startswith("job-airflow-objects-"))
        assert job["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "1"
        assert f"{secret_kind}-airflow-objects.yaml" in objs
    ref = objects_of("celery-dev")["secret-airflow-objects.yaml"]["stringData"]["ref-connections__warehouse-password"]
    assert ref.startswith("?{base64:targets/celery-dev/connections/warehouse-password:")


def test_extra_env_volumes_and_manifests_land_where_asked(objects_of):
    objs = objects_of("celery-prod")
    triggerer = objs["deployment-airflow-triggerer.yaml"]["spec"]["template"]["spec"]
    assert [c["name"] for c in triggerer["containers"]] == ["triggerer", "git-sync", "log-groomer", "token-refresher"]
    assert [c["name"] for c in triggerer["initContainers"]][-1] == "warm-up"
    scheduler = objs["deployment-airflow-scheduler.yaml"]
    assert env_of(container(scheduler, "scheduler"))["TZ"] == "Europe/Paris"
    assert {"name": "team-settings", "configMap": {"name": "airflow-team-settings"}} in scheduler["spec"]["template"]["spec"]["volumes"]
    extra = objs["configmap-airflow-team-settings.yaml"]
    assert extra["metadata"]["namespace"] == "airflow-celery-prod"


def test_network_policies_open_the_new_flows(objects_of):
    objs = objects_of("celery-dev")
    redis = objs["networkpolicy-airflow-redis.yaml"]["spec"]
    assert redis["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 6379}]
    clients = redis["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0]["values"]
    assert clients == ["scheduler", "celery-worker", "flower"]
    postgres = objs["networkpolicy-airflow-postgres.yaml"]["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}} in postgres
    assert "networkpolicy-airflow-pgbouncer.yaml" in objs and "networkpolicy-airflow-statsd.yaml" in objs
    task_pods = objs["networkpolicy-airflow-task-egress.yaml"]["spec"]["podSelector"]["matchExpressions"][0]["values"]
    assert task_pods == ["worker", "celery-worker"]


BAD_FEATURE_INPUTS = [
    (DEV, {"connections": {"wh": {"conn_type": "postgres", "password": {"ref": "connections/wh"}}}},
     "parameters.airflow.connections.wh.password: the Kapitan ref targets/broken/connections/wh does not exist yet: "
     "write it once with `kapitan refs --write base64:targets/broken/connections/wh -f FILE`"),
    (DEV, {"variables": {"x": {"value": "a", "secret": {"ref": "variables/x"}}}},
     "parameters.airflow.variables.x: must be either value (plain text) or secret"),
    (DEV_BASE + ["airflow.executor.celery"], {},
     "parameters.airflow.logs.persistence: emptyDir loses task logs when a Celery worker restarts or is scaled in"),
    (STAGING + ["airflow.database.pgbouncer"], PRODUCTION_SETTINGS,
     "parameters.airflow.database.external.host: is empty: parameters.airflow.database.pgbouncer.enabled connects"),
    (DEV + ["airflow.metrics.service-monitor"], {},
     "parameters.airflow.metrics.service_monitor.enabled: a ServiceMonitor scrapes the bundled statsd-exporter"),
    (DEV, {"logs": {"remote": {"provider": "s3", "base_folder": "gs://bucket/logs"}}},
     "parameters.airflow.logs.remote.base_folder: \"gs://bucket/logs\" is not a s3 location"),
    (DEV, {"api_server": {"autoscaling": {"enabled": True, "min_replicas": 5, "max_replicas": 3}}},
     "parameters.airflow.api_server.autoscaling.min_replicas: 5 is more than max_replicas (3)"),
    (DEV, {"scheduler": {"extra_env": [{"name": "AIRFLOW__CORE__EXECUTOR", "value": "CeleryExecutor"}]}},
     "parameters.airflow.scheduler.extra_env: AIRFLOW__CORE__EXECUTOR cannot be set here: it is [core] executor"),
    (DEV, {"celery": {"workers": {"autoscaling": {"mode": "kdea"}}}},
     "parameters.airflow.celery.workers.autoscaling.mode: 'kdea' is not one of ['none', 'keda', 'hpa']"),
    (DEV, {"extra_manifests": {"mine": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "airflow-config"}}}},
     "parameters.airflow.extra_manifests: configmap-airflow-config is an object Airflow GitOps already compiles"),
    (DEV, {"scheduler": {"extra_env": [{"name": "TZ", "value": 1}]}},
     "parameters.airflow.scheduler.extra_env.0.value: 1 is not a string"),
    (DEV_BASE + ["airflow.executor.celery", "airflow.logs.pvc", "airflow.celery.hpa"],
     {"logs": {"pvc": {"storage_class": "nfs-client"}}, "celery": {"workers": {"autoscaling": {"min_replicas": 0}}}},
     "parameters.airflow.celery.workers.autoscaling.min_replicas: 0 needs mode keda"),
    (DEV, {"triggerer": {"extra_containers": [{"name": "proxy"}]}},
     "parameters.airflow.triggerer.extra_containers.0: 'image' is a required property"),
]


@pytest.mark.parametrize("classes,airflow,message", BAD_FEATURE_INPUTS)
def test_a_wrong_feature_setting_fails_the_compile_naming_file_and_key(classes, airflow, message, scratch_repo):
    write_target(scratch_repo, "broken", classes, airflow)
    before = sorted(p for p in (scratch_repo / "compiled").rglob("*"))
    result = compile_in(scratch_repo, "-t", "broken")
    assert result.returncode != 0
    assert f"inventory/targets/broken.yml: {message}" in result.stdout + result.stderr
    assert sorted(p for p in (scratch_repo / "compiled").rglob("*")) == before


@pytest.mark.slow
def test_declared_objects_db_clean_and_keda_query_run_against_a_migrated_database(features_repo, postgres, tmp_path):
    """The airflow-objects Job's script (twice: it must be idempotent), the db-clean CronJob's
    command and the KEDA query, with Airflow 3.3.2 on a freshly migrated PostgreSQL."""
    from airflow_gitops.airflow_env import ensure_airflow

    airflow_env = ensure_airflow(REPO, "3.3.2")
    create_database(postgres, "airflow", "airflow-test", "airflow")
    home = tmp_path / "airflow"
    home.mkdir()
    env = {
        **os.environ,
        "PATH": f"{airflow_env.python.parent}:{os.environ['PATH']}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://airflow:airflow-test@127.0.0.1:{postgres}/airflow",
        "AIRFLOW__CORE__FERNET_KEY": "x" * 43 + "=",
    }
    airflow = str(airflow_env.airflow)
    migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True)
    assert migrate.returncode == 0, migrate.stderr[-2000:]

    objects = load_manifests(features_repo / "compiled", "celery-dev")
    data = objects["configmap-airflow-objects.yaml"]["data"]
    job = next(o for n, o in objects.items() if n.startswith("job-airflow-objects-"))
    command = job["spec"]["template"]["spec"]["containers"][0]["args"]
    # The mounted secret files, where the kubelet would put them.
    secrets = tmp_path / "object-secrets"
    secrets.mkdir()
    (secrets / "ref-connections__warehouse-password").write_text("s3cret-warehouse")
    (secrets / "secret-airflow-slack-webhook").write_text("https://hooks.example.com/T0/B0")
    spec_dir = tmp_path / "objects"
    spec_dir.mkdir()
    (spec_dir / "apply.py").write_text(data["apply.py"])
    (spec_dir / "objects.json").write_text(data["objects.json"].replace("/opt/airflow/object-secrets", str(secrets)))
    work = tmp_path / "work"
    work.mkdir()
    assert command[1:] == ["/opt/airflow/objects/apply.py", "/opt/airflow/objects/objects.json", "/tmp/objects"]
    for _ in range(2):
        applied = subprocess.run([str(airflow_env.python), str(spec_dir / "apply.py"), str(spec_dir / "objects.json"), str(work)],
                                 env=env, capture_output=True, text=True)
        assert applied.returncode == 0, applied.stdout[-2000:] + applied.stderr[-2000:]
        assert "applied 1 connections" in applied.stdout and "applied 2 variables" in applied.stdout
        assert list(work.iterdir()) == []  # no secret left behind

    def airflow_json(*args: str):
        result = subprocess.run([airflow, *args, "--output", "json"], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
        return json.loads(result.stdout)

    connection = airflow_json("connections", "get", "warehouse")[0]
    assert (connection["conn_type"], connection["host"], connection["password"]) == ("postgres", "warehouse.example.com", "s3cret-warehouse")
    assert json.loads(connection["extra_dejson"] if isinstance(connection["extra_dejson"], str) else json.dumps(connection["extra_dejson"])) == {"sslmode": "require"}
    variable = subprocess.run([airflow, "variables", "get", "slack_webhook"], env=env, capture_output=True, text=True)
    assert variable.stdout.strip() == "https://hooks.example.com/T0/B0"
    pool = airflow_json("pools", "get", "warehouse")[0]
    assert int(pool["slots"]) == 4

    clean = objects["cronjob-airflow-db-clean.yaml"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    cleaned = subprocess.run(clean, env=env, capture_output=True, text=True)
    assert cleaned.returncode == 0, cleaned.stderr[-2000:]

    query = objects["scaledobject-airflow-celery-worker.yaml"]["spec"]["triggers"][0]["metadata"]["query"]
    counted = subprocess.run([*psql(postgres), "-c", query, "airflow"], capture_output=True, text=True)
    assert counted.returncode == 0, counted.stderr
    assert counted.stdout.strip() == "0"
