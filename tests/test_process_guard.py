"""The suite's guard against leaked processes (conftest.py): a test that leaves a process running,
directly or orphaned, fails at its teardown, naming the process; one left by a fixture is reported at
the end of the session, which then fails; either way the process is stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from conftest import REPO, group_members, running, start_group, stop_groups

LEAKY_TESTS = '''
import subprocess
import pytest

SLEEP = {sleep!r}


def test_leaves_a_child_running():
    subprocess.Popen(["sleep", SLEEP])


def test_leaves_an_orphan_running():
    # sh exits at once: its sleep is orphaned, as a forked scheduler's serve-logs was.
    subprocess.run(["sh", "-c", f"sleep {{SLEEP}} >/dev/null 2>&1 &"], check=True)


def test_stops_what_it_starts():
    subprocess.run(["true"], check=True)


@pytest.fixture(scope="module")
def forgotten_server():
    yield subprocess.Popen(["sleep", SLEEP], start_new_session=True)


def test_uses_a_fixture_that_never_stops_its_process(forgotten_server):
    assert forgotten_server.poll() is None
'''


def sleeping(marker: str) -> list[str]:
    """pids of `sleep MARKER` processes, wherever they are."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", marker.encode()]:
                found.append(entry)
        except OSError:
            continue
    return found


def test_leaked_processes_fail_the_test_or_the_session_and_are_stopped(tmp_path):
    sleep = f"{300 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6:06d}"  # unique to this run
    (tmp_path / "test_leaky.py").write_text(LEAKY_TESTS.format(sleep=sleep))
    # This suite's conftest as a plugin of a pytest run of its own, in an empty directory.
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-q", "-p", "no:cacheprovider",
                             "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_leaky.py")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO / "tests"), "AIRFLOW_GITOPS_TEST_LEAK_GRACE": "1"})
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "4 passed, 2 errors" in output, output
    assert "ERROR at teardown of test_leaves_a_child_running" in output
    assert "ERROR at teardown of test_leaves_an_orphan_running" in output
    assert "test_leaky.py::test_leaves_a_child_running left 1 process running (now killed):" in output
    assert f"sleep {sleep}" in output
    assert "processes left running by the test session (now killed)" in output
    assert sleeping(sleep) == [], "the guard must stop what it reports"


def test_a_group_is_stopped_with_its_children_even_when_they_ignore_sigterm(tmp_path):
    ready = tmp_path / "ready"
    # A parent whose child ignores SIGTERM and outlives it: only the group's SIGKILL reaches it.
    script = f"trap '' TERM; (trap '' TERM; touch {ready}; exec sleep 600) & wait"
    with running(["sh", "-c", script], stop_timeout=2) as process:
        deadline = time.monotonic() + 10
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists()
    assert process.returncode is not None
    assert group_members(process.pid) == []


def test_stopping_groups_waits_for_every_member_not_just_the_leader():
    process = start_group(["sh", "-c", "sleep 600 & sleep 600 & wait"])
    time.sleep(0.2)
    stop_groups([process], timeout=5)
    assert group_members(process.pid) == []

