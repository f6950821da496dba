"""The CeleryExecutor through `airflow-gitops up`: a target as a user writes it (the dev classes
with airflow.executor.celery, the bundled Redis broker, task logs on a claim, and its secrets from
an External Secrets store, whose values `up` takes from a local file), compiled in a copy of the
repository, brought up as the kubelet would run it; a DAG from dags/ runs to success on
the real Celery worker, a worker deleted mid-task (SIGTERM to Celery's main process only,
DUMB_INIT_SETSID=0) lets its running task finish within the grace period, and the housekeeping
CronJob runs once. One `up` for the module."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet

from airflow_api import http
from airflow_gitops.up import manifests
from conftest import REPO, compile_in, copy_repo, descendants, start_group, stop_groups
from up_leftovers import leftovers

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).with_name("airflow-gitops"))
TARGET = "celery-local"
GRACE_SECONDS = 180
# Workers: 4 task slots in 2Gi; the worker's CPU is 1 core of this machine's 2.
TARGET_INVENTORY = {
    "classes": ["common", "airflow.defaults", "airflow.executor.celery", "airflow.dags.git-sync",
                "airflow.database.bundled", "airflow.logs.pvc", "airflow.auth.simple", "secrets.external-secrets", "dag-repository",
                "gitops-repository", "profiles.dev"],
    "parameters": {"airflow": {
        "dags": {"git_sync": {"ref": "main"}},
        # The claim is a directory here; a cluster needs a ReadWriteMany class.
        "logs": {"pvc": {"storage_class": "local-rwx"}},
        "celery": {"workers": {"concurrency": 4, "termination_grace_period_seconds": GRACE_SECONDS,
                               "resources": {"requests": {"cpu": "250m", "memory": "1Gi"},
                                             "limits": {"cpu": "1", "memory": "2Gi"}}}},
    }},
}
# A task long enough to be running when its worker is told to stop.
LONG_DAG = '''
"""Test only: one task that takes a while, for stopping its Celery worker mid-task."""
import time

import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, default_args={"retries": 0})
def up_celery_long():
    @task
    def slow() -> str:
        for second in range(40):
            print(f"working {second}", flush=True)
            time.sleep(1)
        return "done"

    slow()


up_celery_long()
'''


@dataclass
class Up:
    root: Path
    process: subprocess.Popen
    log: Path
    base: str
    token: str

    def text(self) -> str:
        return self.log.read_text()


def run_cli(root: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], cwd=root, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "AIRFLOW_GITOPS_CACHE": str(REPO / ".cache")})


def store_values(root: Path) -> dict[str, str]:
    """What a user puts in the External Secrets store for this environment, here in the local file
    `up --secrets-file` reads: a value for every store key its ExternalSecrets name (a Fernet key
    where Airflow expects one)."""
    values = {}
    for path in sorted((root / "compiled" / TARGET / "manifests").rglob("externalsecret-*.yaml")):
        for item in yaml.safe_load(path.read_text())["spec"].get("data", []):
            key = item["remoteRef"]["key"]
            values[key] = Fernet.generate_key().decode() if key.endswith("fernet-key") else secrets.token_urlsafe(32)
    assert len(values) >= 6, values  # admin, API and JWT keys, Fernet key, PostgreSQL's and Redis's passwords
    return values


# The worker is replaced while the module runs, so the per-test guard against leftover processes is
# replaced by one around the module: whatever it started is gone when it ends.
@pytest.fixture
def no_process_left_behind() -> Iterator[None]:
    yield


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    before = set(descendants())
    root = copy_repo(tmp_path_factory.mktemp("celery") / "repo")
    shutil.copytree(REPO / "dags", root / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "dags" / "up_celery_long.py").write_text(LONG_DAG)
    (root / "inventory" / "targets" / f"{TARGET}.yml").write_text(yaml.safe_dump(TARGET_INVENTORY, sort_keys=False))
    for _ in range(2):  # the first compile writes the generated refs, the second reads their digests
        result = compile_in(root, "-t", TARGET)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    secrets_file = root / "store-values.yml"
    secrets_file.write_text(yaml.safe_dump(store_values(root)))
    log = root / "up.log"
    with open(log, "w") as out:
        process = start_group([CLI, "up", "--target", TARGET, "--port", "0", "--run-cronjobs", "--secrets-file", str(secrets_file)],
                              cwd=root, stdout=out,
                              stderr=subprocess.STDOUT, env={**os.environ, "AIRFLOW_GITOPS_CACHE": str(REPO / ".cache")})
    try:
        deadline = time.monotonic() + 900
        while f"{TARGET}: up;" not in log.read_text():
            assert process.poll() is None, f"up exited ({process.returncode}):\n{log.read_text()[-5000:]}"
            assert time.monotonic() < deadline, f"{TARGET} was not up in 900 s:\n{log.read_text()[-5000:]}"
            time.sleep(2)
        base = re.search(r"the api-server answers at (http://127\.0\.0\.1:\d+)", log.read_text()).group(1)
        admin = manifests.load(root, TARGET, secrets_file).secrets["airflow-admin-passwords"]["admin-password"]
        status, body = http("POST", base + "/auth/token", {"username": "admin", "password": admin})
        assert status == 201, status
        yield Up(root, process, log, base, body["access_token"])
        down = run_cli(root, "down", "--target", TARGET, timeout=GRACE_SECONDS + 120)
        assert down.returncode == 0 and f"{TARGET}: stopped" in down.stdout, down.stdout + down.stderr
        assert process.wait(timeout=120) == 0, log.read_text()[-3000:]
        assert f"{TARGET}: stopped; nothing left running" in log.read_text()
        assert "WRITE TO THE READ-ONLY ROOT" not in log.read_text()
        assert "Read-only file system" not in log.read_text()
    finally:
        stop_groups([process], timeout=GRACE_SECONDS + 60)
        run_cli(root, "down", "--target", TARGET, timeout=GRACE_SECONDS + 120)
        assert leftovers(TARGET) == []
        left = {p for p in descendants() if p not in before}
        assert not left, f"processes left running: {sorted(left)}"


def unpause_and_trigger(up: Up, dag_id: str) -> str:
    deadline = time.monotonic() + 240
    while http("GET", up.base + f"/api/v2/dags/{dag_id}", token=up.token)[0] != 200:
        assert time.monotonic() < deadline, f"{dag_id} was not parsed from the git-sync'd DAGs"
        time.sleep(2)
    assert http("PATCH", up.base + f"/api/v2/dags/{dag_id}", {"is_paused": False}, up.token)[0] == 200
    status, run = http("POST", up.base + f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None}, up.token)
    assert status == 200, status
    return run["dag_run_id"]


def task_instances(up: Up, dag_id: str, run_id: str) -> list[dict]:
    return http("GET", up.base + f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", token=up.token)[1].get("task_instances", [])


def wait_for_run(up: Up, dag_id: str, run_id: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while (state := http("GET", up.base + f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", token=up.token)[1].get("state")) not in ("success", "failed"):
        assert time.monotonic() < deadline, f"{dag_id} {run_id} did not finish in {timeout:.0f} s: {task_instances(up, dag_id, run_id)}"
        time.sleep(2)
    return state


def pod_address(up: Up, pod: str) -> str:
    return re.findall(rf"^{pod}\s+(10\.\d+\.\d+\.\d+)\s", up.text(), re.M)[-1]


def test_the_celery_pods_are_ready_and_the_housekeeping_cronjob_ran_once(up):
    table = up.text().split("the api-server answers at", 1)[1]
    ready = set(re.findall(r"^(airflow-[\w-]+)\s+10\.\d+\.\d+\.\d+\s+(?:Running|Succeeded)\s+yes", table, re.M))
    assert {"airflow-postgres-0", "airflow-redis-0", "airflow-celery-worker-0", "airflow-api-server",
            "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-db-clean-1"} <= ready, table
    assert f"{TARGET}: CronJob airflow-db-clean: succeeded" in up.text()
    assert "OOMKilled" not in table


def test_a_dag_from_dags_runs_to_success_on_the_celery_worker(up):
    run_id = unpause_and_trigger(up, "example_etl")
    assert wait_for_run(up, "example_etl", run_id, 300) == "success", task_instances(up, "example_etl", run_id)
    worker = pod_address(up, "airflow-celery-worker-0")
    for ti in task_instances(up, "example_etl", run_id):
        # hostname_callable is the pod's address: the worker pod ran every task, each on its first try.
        assert (ti["state"], ti["hostname"], ti["try_number"]) == ("success", worker, 1), ti


def test_a_worker_deleted_mid_task_lets_the_task_finish_within_its_grace_period(up):
    run_id = unpause_and_trigger(up, "up_celery_long")
    deadline = time.monotonic() + 180
    while not any(ti["state"] == "running" for ti in task_instances(up, "up_celery_long", run_id)):
        assert time.monotonic() < deadline, f"the long task never ran: {task_instances(up, 'up_celery_long', run_id)}"
        time.sleep(1)
    time.sleep(5)  # well into the task
    began = time.monotonic()
    deleted = run_cli(up.root, "down", "--target", TARGET, "--pod", "airflow-celery-worker-0", timeout=GRACE_SECONDS + 300)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    took = float(re.search(r"worker: exited 0 after ([\d.]+) s", deleted.stdout).group(1))
    # Celery's warm shutdown: no more tasks taken, the running one finished, then the worker exited
    # (cleanly, well before the grace period), the task's remaining ~30 s included.
    assert 20 < took < GRACE_SECONDS, deleted.stdout
    assert "replacement started" in deleted.stdout
    assert time.monotonic() - began < GRACE_SECONDS + 240
    assert wait_for_run(up, "up_celery_long", run_id, 120) == "success"
    [ti] = task_instances(up, "up_celery_long", run_id)
    assert (ti["state"], ti["try_number"]) == ("success", 1), ti
