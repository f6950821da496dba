"""`airflow-gitops up --target dev` runs the committed compiled/dev as the kubelet would (each pod
its own address, each container its sandbox and cgroup), a DAG from dags/ runs to success through
the forwarded api-server, and `airflow-gitops down` leaves nothing behind."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_gitops.up import manifests
from conftest import REPO, start_group, stop_groups
from test_dev_stack_runs import http

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).with_name("airflow-gitops"))


def leftovers() -> list[str]:
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    cgroups = [str(p) for p in Path("/sys/fs/cgroup").rglob("airflow-gitops-dev")] if Path("/sys/fs/cgroup").exists() else []
    return [line for line in (namespaces + links).splitlines() if "agw-" in line] + cgroups


def test_up_runs_the_dev_pods_and_a_dag_and_down_leaves_nothing(tmp_path):
    log = tmp_path / "up.log"
    with open(log, "w") as out:
        up = start_group([CLI, "up", "--target", "dev", "--port", "0"], cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        while "dev: up;" not in log.read_text():
            assert up.poll() is None, f"up exited ({up.returncode}):\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"dev was not up in 600 s:\n{log.read_text()[-4000:]}"
            time.sleep(2)
        text = log.read_text()
        base = re.search(r"the api-server answers at (http://127\.0\.0\.1:\d+)", text).group(1)
        # Every pod ready at an address of its own, no restart, nothing over its memory limit.
        table = text.split("the api-server answers at", 1)[1]
        addresses = re.findall(r"^(airflow-[\w-]+)\s+(10\.\d+\.\d+\.\d+)\s+(Running|Succeeded)\s+yes", table, re.M)
        assert {name for name, _, _ in addresses} >= {"airflow-postgres-0", "airflow-api-server", "airflow-scheduler",
                                                     "airflow-dag-processor", "airflow-triggerer"}, table
        assert len({ip for _, ip, _ in addresses}) == len(addresses)
        assert "OOMKilled" not in table and "restart" not in text

        admin = manifests.load(REPO, "dev").secrets["airflow-admin-passwords"]["admin-password"]
        status, body = http("POST", base + "/auth/token", {"username": "admin", "password": admin})
        assert status == 201
        token = body["access_token"]
        deadline = time.monotonic() + 180
        while http("GET", base + "/api/v2/dags/example_etl", token=token)[0] != 200:
            assert time.monotonic() < deadline, "example_etl was not parsed from the git-sync'd DAGs"
            time.sleep(2)
        assert http("PATCH", base + "/api/v2/dags/example_etl", {"is_paused": False}, token)[0] == 200
        status, run = http("POST", base + "/api/v2/dags/example_etl/dagRuns", {"logical_date": None}, token)
        assert status == 200
        deadline = time.monotonic() + 300
        while (state := http("GET", base + f"/api/v2/dags/example_etl/dagRuns/{run['dag_run_id']}", token=token)[1].get("state")) not in ("success", "failed"):
            assert time.monotonic() < deadline, "the DAG run did not finish in 300 s"
            time.sleep(2)
        assert state == "success"

        down = subprocess.run([CLI, "down", "--target", "dev"], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert down.returncode == 0 and "dev: stopped" in down.stdout, down.stdout + down.stderr
        assert up.wait(timeout=120) == 0, log.read_text()[-3000:]
        assert "dev: stopped; nothing left running" in log.read_text()
        assert "Read-only file system" not in log.read_text()
    finally:
        stop_groups([up], timeout=60)
        subprocess.run([CLI, "down", "--target", "dev"], cwd=REPO, capture_output=True, timeout=120)
    assert leftovers() == []
