"""A throwaway PostgreSQL 15 server for tests that need a real database outside `airflow-gitops up`
(the sign-in and production-feature tests): started on 127.0.0.1 as the postgres user, stopped and
removed afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


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
