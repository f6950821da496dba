"""What `up`'s kubelet honours, on a small environment of its own (shell and Python containers of
the stand-in image, no Airflow): replicas and Services, startup, liveness and readiness probes
acted on, pod deletion with preStop hooks and the grace period, the controller's replacement,
CronJobs run once (or skipped when they need the Kubernetes API), the downward API, Memory
emptyDirs, and writes to the read-only root reported. One environment for the module."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from airflow_gitops.airflow_env import AirflowEnvironment
from airflow_gitops.up import manifests
from airflow_gitops.up.controllers import MAX_REPLICAS, kubernetes_api_reason
from airflow_gitops.up.kubelet import LocalEnvironment
from conftest import REPO, descendants, load_manifests
from up_leftovers import leftovers

ENVIRONMENT = "kubelet-test"
NAMESPACE = "airflow-kubelet-test"
STAND_IN = AirflowEnvironment(Path(sys.prefix))  # python is all these containers need
SECURITY = {"runAsUser": 50000, "runAsGroup": 0, "runAsNonRoot": True, "fsGroup": 0}
SLEEP = "exec sleep 100000"


def container(name: str, script: str, **extra) -> dict:
    return {"name": name, "image": "apache/airflow:3.3.2", "command": ["sh", "-c", script], **extra}


def exec_probe(script: str, **settings) -> dict:
    return {"exec": {"command": ["sh", "-c", script]}, "periodSeconds": 1, "failureThreshold": 2, **settings}


def workload(kind: str, name: str, containers: list[dict], replicas: int = 1, volumes: list[dict] | None = None,
             grace: int = 5, **spec) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, **spec, "template": {
                "metadata": {"labels": labels},
                "spec": {"securityContext": SECURITY, "terminationGracePeriodSeconds": grace, "containers": containers,
                         "volumes": [{"name": "tmp", "emptyDir": {}}, *(volumes or [])]}}}}


TMP = [{"name": "tmp", "mountPath": "/tmp"}]
EVIDENCE = [*TMP, {"name": "evidence", "mountPath": "/evidence"}]
EVIDENCE_VOLUME = [{"name": "evidence", "persistentVolumeClaim": {"claimName": "evidence"}}]

WORKLOADS = {
    # Two pods with their own addresses, the downward API, a 1Mi Memory emptyDir.
    "statefulset-web.yaml": workload("StatefulSet", "web", [container(
        "server", 'echo "me=$POD_NAME ip=$POD_IP ns=$POD_NAMESPACE"; '
                  'head -c 2097152 /dev/zero > /cache/big 2>/dev/null || echo "cache full at $(du -k /cache/big | cut -f1) KiB"; '
                  "exec python -m http.server 8000",
        env=[{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
             {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
             {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
        ports=[{"name": "http", "containerPort": 8000}],
        readinessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
        volumeMounts=[*TMP, {"name": "cache", "mountPath": "/cache"}])],
        replicas=2, volumes=[{"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}], serviceName="web"),
    "deployment-many.yaml": workload("Deployment", "many", [container("main", SLEEP, volumeMounts=TMP)], replicas=5),
    # Alive for 3 s, then its liveness probe fails: restarted.
    "deployment-flaky.yaml": workload("Deployment", "flaky", [container(
        "main", f"touch /tmp/alive; sleep 3; rm /tmp/alive; {SLEEP}", volumeMounts=TMP,
        livenessProbe=exec_probe("test -f /tmp/alive"))], grace=2),
    # Its startup probe passes on the second run only; a readiness probe that ran before it
    # passed would leave /tmp/early.
    "deployment-slow-start.yaml": workload("Deployment", "slow-start", [container(
        "main", f"if [ -f /tmp/ran ]; then touch /tmp/started; else touch /tmp/ran; fi; {SLEEP}", volumeMounts=TMP,
        startupProbe=exec_probe("test -f /tmp/started", failureThreshold=3),
        readinessProbe=exec_probe("test -f /tmp/started || touch /tmp/early"))], grace=2),
    # Ready, not ready, ready... every 3 s.
    "deployment-toggle.yaml": workload("Deployment", "toggle", [container(
        "main", "while true; do touch /tmp/ready; sleep 3; rm -f /tmp/ready; sleep 3; done", volumeMounts=TMP,
        readinessProbe=exec_probe("test -f /tmp/ready", failureThreshold=1))]),
    # Stops on SIGTERM after its preStop hook; both leave a line in a claim that outlives the pod.
    "deployment-graceful.yaml": workload("Deployment", "graceful", [container(
        "main", 'trap "echo term >> /evidence/events; exit 0" TERM; echo started >> /evidence/events; '
                "while true; do sleep 0.2; done", volumeMounts=EVIDENCE,
        lifecycle={"preStop": {"exec": {"command": ["sh", "-c", "echo prestop >> /evidence/events"]}}})],
        volumes=EVIDENCE_VOLUME, grace=10),
    # Ignores SIGTERM: killed when its 2 s grace period is over.
    "deployment-stubborn.yaml": workload("Deployment", "stubborn", [container(
        "main", 'trap "" TERM; while true; do sleep 0.2; done', volumeMounts=TMP)], grace=2),
    # The image's entrypoint (dumb-init) passes SIGTERM to the main process's group, or with
    # DUMB_INIT_SETSID=0 to the main process alone.
    "deployment-dumb-init.yaml": workload("Deployment", "dumb-init", [
        {"name": "setsid", "image": "apache/airflow:3.3.2", "args": ["bash", "-c", "sleep 100000 & wait"], "volumeMounts": TMP},
        {"name": "no-setsid", "image": "apache/airflow:3.3.2", "args": ["bash", "-c", "sleep 100000 & wait"], "volumeMounts": TMP,
         "env": [{"name": "DUMB_INIT_SETSID", "value": "0"}]}]),
    # Writes outside its volumes.
    "deployment-writer.yaml": workload("Deployment", "writer", [container(
        "main", f"echo oops > /opt/airflow/oops; {SLEEP}", volumeMounts=TMP)]),
}
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NAMESPACE},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 8000}]}}


def cronjob(name: str, args: list[str], **pod) -> dict:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"schedule": "17 3 * * *", "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": {
                "securityContext": SECURITY, "restartPolicy": "Never", "automountServiceAccountToken": False,
                "containers": [{"name": "run", "image": "apache/airflow:3.3.2", "args": args, "volumeMounts": EVIDENCE}],
                "volumes": [{"name": "tmp", "emptyDir": {}}, *EVIDENCE_VOLUME], **pod}}}}}}


CRONJOBS = {
    "cronjob-hello.yaml": cronjob("hello", ["bash", "-c", "echo hello from $HOSTNAME >> /evidence/cron"]),
    "cronjob-cleanup-pods.yaml": cronjob("cleanup-pods", ["kubernetes", "cleanup-pods", "--namespace", NAMESPACE],
                                         automountServiceAccountToken=True, serviceAccountName="airflow-cleanup-pods"),
}


def environment() -> manifests.EnvironmentManifests:
    objects = {"namespace.yaml": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
               "service-web.yaml": SERVICE, **WORKLOADS, **CRONJOBS}
    groups = {name: "base" if name == "statefulset-web.yaml" else "workloads" for name in objects}
    return manifests.EnvironmentManifests(ENVIRONMENT, objects, {}, {}, groups)


# The pods restart and are replaced while the module runs, so the per-test guard against leftover
# processes is replaced by one around the module: whatever it started is gone when it ends.
@pytest.fixture
def no_process_left_behind() -> Iterator[None]:
    yield


@pytest.fixture(scope="module")
def module_guard() -> Iterator[None]:
    before = set(descendants())
    yield
    deadline = time.monotonic() + 15
    while (left := {p: i for p, i in descendants().items() if p not in before}) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"the kubelet test environment left processes running: {sorted(left)}"


@pytest.fixture(scope="module")
def local(module_guard: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnvironment]:
    messages: list[str] = []
    with LocalEnvironment(ENVIRONMENT, tmp_path_factory.mktemp("kubelet"), airflow=STAND_IN, repositories={},
                          say=messages.append) as env:
        env.messages = messages  # type: ignore[attr-defined]
        env.up(environment(), timeout=120)
        yield env
    assert leftovers(ENVIRONMENT) == []


def wait_until(what: str, check, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.2)


def in_pod(local: LocalEnvironment, pod: str, script: str) -> str:
    result = local.pods[pod].sandbox.run("main" if pod != "web-0" else "server", timeout=30, command=["sh", "-c", script])
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_replicas_run_as_pods_of_their_own_and_a_service_names_one_ready_pod(local):
    assert {"web-0", "web-1"} <= set(local.pods)
    assert [name for name in local.pods if name.startswith("many")] == [f"many-{i}" for i in range(MAX_REPLICAS)]
    assert len({pod.net.ip for pod in local.pods.values()}) == len(local.pods)
    assert any("Deployment many: 5 replicas" in note and "capped" in note for note in local.notes)
    assert "note: Deployment many: 5 replicas" in local.status()
    web = {local.pods["web-0"].net.ip, local.pods["web-1"].net.ip}
    resolved = in_pod(local, "many-0", "getent hosts web.airflow-kubelet-test.svc.cluster.local").split()[0]
    assert resolved in web
    assert in_pod(local, "many-0", f"getent hosts web-1").split()[0] == local.pods["web-1"].net.ip


def test_the_downward_api_and_a_memory_empty_dir_of_its_size_limit(local):
    log = (local.pods["web-1"].containers["server"].log).read_text()
    assert f"me=web-1 ip={local.pods['web-1'].net.ip} ns={NAMESPACE}" in log
    assert "cache full at 1024 KiB" in log, log


def test_a_failing_liveness_probe_restarts_the_container(local):
    flaky = local.pods["flaky"].containers["main"]
    wait_until("flaky restarted", lambda: flaky.restarts >= 1, timeout=30)
    assert any("flaky: container main failed its liveness probe 2 times" in m for m in local.messages)
    assert "liveness probe failed" in " ".join(m for m in local.messages if "flaky: container main exited" in m)
    assert "restart 1 in 0 s" in " ".join(local.messages)


def test_a_startup_probe_gates_readiness_and_restarts_a_container_that_never_starts(local):
    pod = local.pods["slow-start"]
    run = pod.containers["main"]
    assert run.restarts == 1 and pod.ready  # up waited for it: started on its second run
    assert any("slow-start: container main failed its startup probe 3 times" in m for m in local.messages)
    assert not (pod.sandbox.volume_dir("tmp") / "early").exists(), "the readiness probe ran before the startup probe passed"
    assert "startup:ok" in local.status() and "readiness:ok" in local.status()


def test_readiness_keeps_being_probed_and_goes_false_and_true_again(local):
    pod = local.pods["toggle"]
    wait_until("toggle not ready", lambda: not pod.ready, timeout=15)
    assert "readiness:fail 1/1" in local.status() or not pod.ready
    wait_until("toggle ready again", lambda: pod.ready, timeout=15)
    assert pod.containers["main"].restarts == 0


def test_deleting_a_pod_runs_its_pre_stop_hook_then_sigterm_and_replaces_it(local):
    events = local.workdir / "claims" / "evidence" / "events"
    old = local.pods["graceful"]
    message = local.delete_pod("graceful")
    assert events.read_text().splitlines()[:3] == ["started", "prestop", "term"], events.read_text()
    assert "main: exited 0 after" in message and "replacement started" in message
    local.wait_ready("graceful", timeout=30)
    replacement = local.pods["graceful"]
    assert replacement is not old and replacement.net.ip == old.net.ip
    wait_until("the replacement started", lambda: events.read_text().splitlines()[-1] == "started", timeout=10)


def test_a_container_ignoring_sigterm_is_killed_after_the_grace_period(local):
    began = time.monotonic()
    message = local.delete_pod("stubborn")
    took = time.monotonic() - began
    assert "SIGKILL after the grace period (2 s)" in message
    assert 2 <= took < 15
    local.wait_ready("stubborn", timeout=30)


def test_sigterm_reaches_the_main_process_group_or_with_dumb_init_setsid_0_the_main_process_only(local):
    pod = local.pods["dumb-init"]
    whole_group = pod.sandbox.signal_targets("setsid", pod.containers["setsid"].process)
    main_only = pod.sandbox.signal_targets("no-setsid", pod.containers["no-setsid"].process)
    assert len(whole_group) == 2 and len(main_only) == 1  # bash and its sleep; bash alone


def test_cronjobs_run_once_and_those_needing_the_kubernetes_api_are_skipped_by_name(local):
    results = {r.name: r for r in local.run_cronjobs()}
    assert results["hello"].outcome == "succeeded", results["hello"].detail
    assert (local.workdir / "claims" / "evidence" / "cron").read_text() == "hello from hello-1\n"
    assert results["cleanup-pods"].outcome == "skipped"
    assert "airflow kubernetes cleanup-pods" in results["cleanup-pods"].detail
    assert any("CronJob cleanup-pods: skipped: needs the Kubernetes API" in m for m in local.messages)


def test_the_compiled_cronjobs_that_need_the_kubernetes_api_are_named():
    for env in ("dev", "prod"):
        objects = load_manifests(REPO / "compiled", env)
        cronjobs = {o["metadata"]["name"]: o for o in objects.values() if o.get("kind") == "CronJob"}
        assert kubernetes_api_reason(cronjobs["airflow-db-clean"], objects) is None
        if env == "prod":
            assert "cleanup-pods" in kubernetes_api_reason(cronjobs["airflow-cleanup-pods"], objects)


def test_a_write_to_the_read_only_root_is_reported(local):
    wait_until("the writer's log", lambda: local.pods["writer"].containers["main"].log.read_text().strip() != "", timeout=10)
    violations = local.read_only_violations()
    assert list(violations) == ["writer/main"], violations
    assert "Read-only file system" in violations["writer/main"][0]
    assert "WRITE TO THE READ-ONLY ROOT: writer/main" in local.status()
