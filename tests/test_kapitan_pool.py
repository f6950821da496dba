"""The pool Kapitan compiles with under airflow_gitops.kapitan_main ends without killing a worker.

The standard pool's `with` block ends with terminate(), which sends SIGTERM to every worker wherever
it is; a worker stopped while sending its result holds the result queue's lock for good, and
terminate() then waits for ever (CPython gh-96995: a failing compile hung a CI run that way, and
about one failing compile in a hundred on two busy cores). The race itself is too narrow to
provoke on demand; what rules it out is that no worker is killed, which these tests pin."""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_gitops import kapitan_pool

FORK = multiprocessing.get_context("fork")  # what .kapitan's mp-method sets


def compile_like(args: tuple[str, int]) -> int:
    """Task 0 fails at once, as a target with a bad inventory does; the others take 0.2 s."""
    directory, n = args
    if n == 0:
        raise RuntimeError("target failed")
    time.sleep(0.2)
    Path(directory, str(n)).touch()
    return n


def run_until_failure(pool_class: type[multiprocessing.pool.Pool], directory: Path) -> list[int | None]:
    """The exit codes of the pool's workers after its `with` block ended on the failing task."""
    with pytest.raises(RuntimeError, match="target failed"):
        with pool_class(2, context=FORK) as pool:
            workers = list(pool._pool)
            for _ in pool.imap_unordered(compile_like, [(str(directory), n) for n in range(40)]):
                pass
    for worker in workers:
        worker.join(5)
    return [worker.exitcode for worker in workers]


def test_after_a_failure_every_worker_ends_on_its_own(tmp_path):
    assert run_until_failure(kapitan_pool.DrainingPool, tmp_path) == [0, 0]


def test_the_standard_pool_kills_the_worker_still_at_work():
    """The difference the draining pool makes: terminate() stopped a worker in the middle of a task."""
    with pytest.raises(RuntimeError):
        with multiprocessing.pool.Pool(2, context=FORK) as pool:
            workers = list(pool._pool)
            for _ in pool.imap_unordered(compile_like, [("/nonexistent", 0), ("/nonexistent", 1)]):
                pass
    for worker in workers:
        worker.join(5)
    assert -15 in [worker.exitcode for worker in workers]


def test_tasks_not_started_when_a_task_fails_are_skipped(tmp_path):
    run_until_failure(kapitan_pool.DrainingPool, tmp_path)
    assert len(list(tmp_path.iterdir())) < 10  # of 39 that would have run


def test_every_result_arrives_and_every_worker_ends_on_its_own_when_nothing_fails(tmp_path):
    with kapitan_pool.DrainingPool(2, context=FORK) as pool:
        workers = list(pool._pool)
        assert sorted(pool.imap_unordered(compile_like, [(str(tmp_path), n) for n in range(1, 9)])) == list(range(1, 9))
    assert [worker.exitcode for worker in workers] == [0, 0]


def test_kapitan_main_gives_kapitan_the_draining_pool():
    probe = ("import multiprocessing; from airflow_gitops import kapitan_main; kapitan_main.prepare(); "
             "pool = multiprocessing.Pool(1); print(type(pool).__name__); pool.close(); pool.join()")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "DrainingPool"
