"""`airflow-gitops up --target dev` runs the committed compiled/dev as the kubelet would (each pod
its own address, each container its sandbox and cgroup): a DAG from dags/ runs to success through
the forwarded api-server, then a mapped DAG fans out to the environment's own concurrency limits
without an OOM kill, a restart or a failed try, within the memory the compile-time sizing rule
allows (kapitan/lib/inventory-sizing.libsonnet); `airflow-gitops down` leaves nothing behind."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from airflow_api import http
from airflow_gitops.up import limits, manifests
from conftest import REPO, start_group, stop_groups
from up_leftovers import leftovers

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).with_name("airflow-gitops"))


def mebibytes(quantity: str) -> int:
    return limits.parse_memory(quantity) // 2**20


def scheduler_memory(table: str) -> tuple[int, int]:
    """The scheduler container's memory peak and limit (MiB) in a status table `up` printed."""
    peak, limit = re.search(r"^\s+scheduler\s+\d+\s+(\d+)Mi / (\d+)Mi", table, re.M).groups()
    return int(peak), int(limit)


def run_to_the_end(base: str, token: str, dag: str, conf: dict, timeout: float) -> tuple[str, int, list[dict]]:
    """Triggers `dag` and waits for its run: its final state, the most task instances seen running
    at once, and the task instances at the end."""
    assert http("PATCH", base + f"/api/v2/dags/{dag}", {"is_paused": False}, token)[0] == 200
    status, run = http("POST", base + f"/api/v2/dags/{dag}/dagRuns", {"logical_date": None, "conf": conf}, token)
    assert status == 200, run
    runs = base + f"/api/v2/dags/{dag}/dagRuns/{run['dag_run_id']}"
    deadline, most = time.monotonic() + timeout, 0
    while (state := http("GET", runs, token=token)[1].get("state")) not in ("success", "failed"):
        assert time.monotonic() < deadline, f"{dag} did not finish in {timeout} s"
        instances = http("GET", runs + "/taskInstances?limit=500", token=token)[1].get("task_instances", [])
        most = max(most, sum(1 for ti in instances if ti["state"] == "running"))
        time.sleep(1)
    return state, most, http("GET", runs + "/taskInstances?limit=500", token=token)[1]["task_instances"]


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

        status, health = http("GET", base + "/api/v2/monitor/health")
        assert status == 200 and all(health[part]["status"] == "healthy" for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")), health
        # The admin logs in with the generated password, and with no other.
        dev = manifests.load(REPO, "dev")
        admin = dev.secrets["airflow-admin-passwords"]["admin-password"]
        assert http("POST", base + "/auth/token", {"username": "admin", "password": "not-the-password"})[0] == 401
        status, body = http("POST", base + "/auth/token", {"username": "admin", "password": admin})
        assert status == 201
        token = body["access_token"]
        deadline = time.monotonic() + 180
        while http("GET", base + "/api/v2/dags/example_etl", token=token)[0] != 200:
            assert time.monotonic() < deadline, "example_etl was not parsed from the git-sync'd DAGs"
            time.sleep(2)
        state, _, _ = run_to_the_end(base, token, "example_etl", {}, 300)
        assert state == "success"

        # A fan-out of twice the environment's task slots: the LocalExecutor runs them all in the
        # scheduler's pod, as many at once as [core] parallelism and max_active_tasks_per_dag allow.
        cfg = dev.config_maps["airflow-config"]["airflow.cfg"]
        slots = min(int(re.search(r"^parallelism = (\d+)", cfg, re.M).group(1)),
                    int(re.search(r"^max_active_tasks_per_dag = (\d+)", cfg, re.M).group(1)))
        state, most, tries = run_to_the_end(base, token, "example_fan_out", {"partitions": 2 * slots, "seconds_per_partition": 20}, 600)
        assert state == "success"
        assert most == slots, f"{most} tasks ran at once, not the environment's {slots}"
        assert all(ti["try_number"] == 1 for ti in tries), [(ti["task_id"], ti["map_index"], ti["try_number"]) for ti in tries]
        down = subprocess.run([CLI, "down", "--target", "dev"], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert down.returncode == 0 and "dev: stopped" in down.stdout, down.stdout + down.stderr
        assert up.wait(timeout=120) == 0, log.read_text()[-3000:]
        text = log.read_text()
        assert "dev: stopped; nothing left running" in text
        # Within what the sizing rule budgets: the scheduler's own memory + a task's for each slot
        # (peaks from the status tables `up` printed when it was up and when it stopped).
        sizing = yaml.safe_load((REPO / "inventory/classes/airflow/defaults.yml").read_text())["parameters"]["airflow"]["sizing"]
        (before, _), (peak, _) = scheduler_memory(table), scheduler_memory(text.rsplit("POD ", 1)[1])
        budget = mebibytes(sizing["scheduler_memory"]) + slots * mebibytes(sizing["task_memory"])
        print(f"scheduler memory: {before}Mi when up, {peak}Mi at {slots} tasks: {(peak - before) / slots:.0f}Mi a task; budget {budget}Mi")
        assert peak <= budget, f"the scheduler peaked at {peak}Mi with {slots} tasks, over the sizing rule's {budget}Mi"
        # The final status table: no container was OOM-killed or restarted in the whole run, no
        # liveness probe ever failed, and every readiness probe passed at the end.
        assert "OOMKilled" not in text and "restart" not in text, text[-3000:]
        final = text.rsplit("POD ", 1)[1]
        probes = re.findall(r"\b(liveness|readiness):(\w+)( \d+/\d+)?( \(\d+ failed\))?", final)
        assert probes and not [p for p in probes if p[0] == "liveness" and (p[1] != "ok" or p[3])], final
        assert all(last == "ok" for kind, last, _, _ in probes if kind == "readiness"), final
        assert "Read-only file system" not in text and "WRITE TO THE READ-ONLY ROOT" not in text
    finally:
        stop_groups([up], timeout=60)
        subprocess.run([CLI, "down", "--target", "dev"], cwd=REPO, capture_output=True, timeout=120)
    assert leftovers("dev") == []
