"""The dev environment's compiled configuration runs for real: PostgreSQL, `airflow db migrate`,
the four Airflow 3.3.2 processes started with the manifests' own args and env (secrets revealed
from the committed refs), admin login with the generated password, and a DAG run to success.

Only what a cluster would provide is substituted: the database host, ports and local paths.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from airflow_gitops.airflow_env import ensure_airflow
from conftest import REPO, free_port, manifest_files, start_group, stop_groups

pytestmark = pytest.mark.slow

PG_BIN = Path("/usr/lib/postgresql/15/bin")
# file name -> path under compiled/dev/manifests/{base,migrations,workloads}
MANIFESTS = manifest_files(REPO / "compiled", "dev")
KAPITAN = str(Path(sys.executable).with_name("kapitan"))


def manifest(name: str) -> dict:
    return yaml.safe_load(MANIFESTS[name].read_text())


def revealed_secret(name: str) -> dict[str, str]:
    result = subprocess.run([KAPITAN, "refs", "--reveal", "-f", str(MANIFESTS[name])],
                            cwd=REPO, capture_output=True, text=True, check=True)
    return yaml.safe_load(result.stdout)["stringData"]


def http(method: str, url: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {}


def wait_for(what: str, check, timeout: float, processes: dict[str, subprocess.Popen], logs: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in processes.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited ({proc.returncode}) while waiting for {what}:\n{(logs / f'{name}.log').read_text()[-3000:]}")
        try:
            value = check()
        except (urllib.error.URLError, ConnectionError, OSError):
            value = None
        if value:
            return value
        time.sleep(1)
    tails = "\n".join(f"--- {n}\n{(logs / f'{n}.log').read_text()[-1500:]}" for n in processes)
    pytest.fail(f"timed out waiting for {what}\n{tails}")


@contextmanager
def throwaway_postgres(initdb_args: str, files: dict[str, str] | None = None) -> Iterator[tuple[Path, int]]:
    """A PostgreSQL 15 server on 127.0.0.1 (a free port), run as postgres, stopped and removed
    afterwards: yields its directory (its socket, the `files` written before initdb, whose
    `initdb_args` may name them by `{dir}`; the data in `data/`) and its port."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL 15 is expected at {PG_BIN} on this machine kind")
    # Not under pytest's tmp dir: that is private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="airflow-gitops-pg-"))
    data = base / "data"
    port = free_port()
    as_postgres = ["su", "postgres", "-c"] if os.geteuid() == 0 else ["sh", "-c"]
    for name, text in (files or {}).items():
        (base / name).write_text(text)
    if os.geteuid() == 0:
        for path in [base, *base.iterdir()]:
            shutil.chown(path, "postgres")
    try:
        subprocess.run([*as_postgres, f"{PG_BIN}/initdb -D {data} {initdb_args.format(dir=base)}"], check=True, capture_output=True)
        # pg_ctl starts the server in a session of its own and returns: pg_ctl stop is what stops it.
        subprocess.run([*as_postgres, f"{PG_BIN}/pg_ctl -D {data} -w -l {base}/log -o '-p {port} -k {base} -c listen_addresses=127.0.0.1' start"],
                       check=True, capture_output=True)
        yield base, port
    finally:
        for mode in ("fast", "immediate"):  # immediate: the server did not stop in time
            stopped = subprocess.run([*as_postgres, f"{PG_BIN}/pg_ctl -D {data} -m {mode} -w -t 30 stop"], capture_output=True)
            if stopped.returncode == 0 or not (data / "postmaster.pid").exists():
                break
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres() -> Iterator[int]:
    """A throwaway server trusting everyone, superuser postgres: its port."""
    with throwaway_postgres("-A trust -U postgres") as (_, port):
        yield port


def psql(port: int) -> list[str]:
    """psql as the superuser of the throwaway server, unaligned and stopping at the first error;
    append "-c", SQL (and a database name)."""
    return ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-tA"]


def create_database(port: int, user: str, password: str, database: str) -> None:
    """A login role and a database it owns, as PostgreSQL's image creates them."""
    subprocess.run([*psql(port), "-c", f"CREATE ROLE {user} LOGIN PASSWORD '{password}'"], check=True, capture_output=True)
    subprocess.run([*psql(port), "-c", f"CREATE DATABASE {database} OWNER {user}"], check=True, capture_output=True)


def test_dev_stack_migrates_serves_logs_in_and_runs_a_dag(postgres, tmp_path):
    airflow_env = ensure_airflow(REPO, "3.3.2")
    db = revealed_secret("secret-airflow-metadata-db.yaml")
    secrets = revealed_secret("secret-airflow-secrets.yaml")
    admin = revealed_secret("secret-airflow-admin-passwords.yaml")
    revealed = {"airflow-metadata-db": db, "airflow-secrets": secrets, "airflow-admin-passwords": admin}

    # The bundled database as the StatefulSet would create it, with the generated password.
    sts = manifest("statefulset-airflow-postgres.yaml")["spec"]["template"]["spec"]["containers"][0]
    pg_env = {e["name"]: e.get("value") for e in sts["env"]}
    create_database(postgres, pg_env["POSTGRES_USER"], db["password"], pg_env["POSTGRES_DB"])

    home = tmp_path / "airflow"
    for sub in ("dags", "logs", "auth"):
        (home / sub).mkdir(parents=True)
    shutil.copytree(REPO / "dags", home / "dags", dirs_exist_ok=True)
    (home / "airflow.cfg").write_text(manifest("configmap-airflow-config.yaml")["data"]["airflow.cfg"])
    def mounted_secrets(pod: dict, container: dict) -> dict[str, str]:
        """The container's Secret volumes written out as the kubelet would: mount path -> local directory."""
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {}
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            sources = [s["secret"] for s in volume.get("projected", {}).get("sources", []) if "secret" in s]
            if "secret" in volume:
                secret = volume["secret"]
                sources.append({"name": secret["secretName"], "items": secret.get("items") or [
                    {"key": key, "path": key} for key in revealed[secret["secretName"]]]})
            if not sources:
                continue
            local = tmp_path / "mounts" / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            for source in sources:
                for item in source["items"]:
                    (local / item["path"]).write_text(revealed[source["name"]][item["key"]])
            mounts[mount["mountPath"]] = str(local)
        return mounts

    def container_env(pod: dict, container: dict) -> dict[str, str]:
        """A container's env as the kubelet builds it, with its Secret volumes at local paths."""
        assert all("value" in var for var in container["env"]), "secrets reach Airflow as files, not env"
        mounts = mounted_secrets(pod, container)
        built: dict[str, str] = {}
        for var in container["env"]:
            value = var["value"]
            for mount_path, local in mounts.items():
                value = value.replace(mount_path, local)
            built[var["name"]] = value
        return built

    # The api-server's init container writes the auth manager's password file: run it for real.
    passwords = home / "auth" / "simple_auth_manager_passwords.json"
    api_pod = manifest("deployment-airflow-api-server.yaml")["spec"]["template"]["spec"]
    writer = next(c for c in api_pod["initContainers"] if c["name"] == "write-admin-passwords")
    assert writer["command"][-2] == "/opt/airflow/auth/simple_auth_manager_passwords.json"
    admin_dir = mounted_secrets(api_pod, writer)["/opt/airflow/admin-password"]
    subprocess.run([str(airflow_env.python), *writer["command"][1:-2], str(passwords), f"{admin_dir}/admin-password"],
                   env=os.environ, check=True)
    assert passwords.stat().st_mode & 0o777 == 0o600

    api_port = free_port()
    # Everything a pod gets from its manifest, then only what a cluster would provide instead.
    scheduler = manifest("deployment-airflow-scheduler.yaml")["spec"]["template"]["spec"]
    env = {**os.environ, **container_env(scheduler, scheduler["containers"][0])}
    service_host = "airflow-postgres.airflow-dev.svc.cluster.local:5432"
    # Airflow composes the database URL itself from the password file (the _CMD option).
    assert service_host in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"]
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"] = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"].replace(service_host, f"127.0.0.1:{postgres}")
    env.update({
        # `python` on PATH, as in the image (the _CMD options that compose URLs run it).
        "PATH": f"{airflow_env.python.parent}{os.pathsep}{os.environ['PATH']}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    })
    airflow = str(airflow_env.airflow)

    job = manifest(next(n for n in MANIFESTS if n.startswith("job-airflow-db-migrate-")))
    migrate = subprocess.run([airflow, *job["spec"]["template"]["spec"]["containers"][0]["args"]], env=env, capture_output=True, text=True)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    wait_args = scheduler["initContainers"][0]["args"]
    assert subprocess.run([airflow, *wait_args], env=env, capture_output=True).returncode == 0

    logs = tmp_path / "process-logs"
    logs.mkdir()
    # Each component in a process group of its own, stopped with its children (the scheduler forks
    # serve-logs and LocalExecutor workers, which outlive it when only its PID is signalled).
    processes: dict[str, subprocess.Popen] = {}
    try:
        for name in ("api-server", "scheduler", "dag-processor", "triggerer"):
            args = manifest(f"deployment-airflow-{name}.yaml")["spec"]["template"]["spec"]["containers"][0]["args"]
            with open(logs / f"{name}.log", "w") as log:
                processes[name] = start_group([airflow, *args], env=env, stdout=log, stderr=subprocess.STDOUT)

        base = f"http://127.0.0.1:{api_port}"

        def healthy():
            status, body = http("GET", f"{base}/api/v2/monitor/health")
            parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
            return status == 200 and all(body.get(p, {}).get("status") == "healthy" for p in parts)

        wait_for("every component healthy", healthy, 120, processes, logs)

        status, body = http("POST", f"{base}/auth/token", {"username": "admin", "password": "not-the-password"})
        assert status == 401
        status, body = http("POST", f"{base}/auth/token", {"username": "admin", "password": admin["admin-password"]})
        assert status == 201, "the generated admin password does not log in"
        token = body["access_token"]

        wait_for("example_etl parsed", lambda: http("GET", f"{base}/api/v2/dags/example_etl", token=token)[0] == 200, 90, processes, logs)
        assert http("PATCH", f"{base}/api/v2/dags/example_etl", {"is_paused": False}, token=token)[0] == 200
        status, run = http("POST", f"{base}/api/v2/dags/example_etl/dagRuns", {"logical_date": None}, token=token)
        assert status == 200, run

        def finished():
            state = http("GET", f"{base}/api/v2/dags/example_etl/dagRuns/{run['dag_run_id']}", token=token)[1].get("state")
            return state if state in ("success", "failed") else None

        assert wait_for("the DAG run", finished, 120, processes, logs) == "success"

        # The liveness probes of the job-based components pass against the running processes.
        for name in ("dag-processor", "triggerer"):
            probe = manifest(f"deployment-airflow-{name}.yaml")["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
            command = probe["exec"]["command"]
            assert subprocess.run([airflow, *command[1:]], env=env, capture_output=True).returncode == 0, name
    finally:
        stop_groups(processes.values(), timeout=60)
