"""Processes started in a group (and session) of their own, and stopped with everything they forked.

Stopping only a leader leaves its children running (Airflow's scheduler forks serve-logs and
LocalExecutor workers, renamed by setproctitle, which outlive it): start long-lived processes with
start_group() or running() and stop them with stop_groups(), which signals the whole group and
session. `airflow-gitops up` runs its containers this way; the tests' leak guard reads the process
table with the same functions.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

__all__ = ["ProcessInfo", "command_line", "descendants", "group_members", "running", "start_group", "stop_groups"]


class ProcessInfo(NamedTuple):
    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str  # Z: a zombie, waiting to be reaped


def _process_table() -> dict[int, ProcessInfo]:
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ", comm may hold anything
        table[int(entry)] = ProcessInfo(int(entry), int(fields[1]), int(fields[2]), int(fields[3]), fields[0])
    return table


def _running(info: ProcessInfo) -> bool:
    return info.state not in ("Z", "X")


def descendants(pid: int | None = None) -> dict[int, ProcessInfo]:
    """The processes below `pid` (default: this one) that are still running, zombies left out."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info.pid)
    found: dict[int, ProcessInfo] = {}
    stack = [os.getpid() if pid is None else pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found[child] = table[child]
                stack.append(child)
    return {p: info for p, info in found.items() if _running(info)}


def group_members(leader: int) -> list[int]:
    """The running processes of the process group and session start_group() made for `leader`: its
    children too, and their children in process groups of their own (Airflow's task runners)."""
    return sorted(p for p, info in _process_table().items() if leader in (info.pgid, info.sid) and _running(info))


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip() or "?"
    except OSError:
        return "(gone)"


def start_group(args: list[str], **popen) -> subprocess.Popen:
    """A process in a process group (and session) of its own: stop_groups() stops it with its children."""
    return subprocess.Popen(args, start_new_session=True, **popen)


def _signal(pid: int, signum: int, group: bool = False) -> None:
    try:
        (os.killpg if group else os.kill)(pid, signum)
    except ProcessLookupError:
        pass


def _wait_for_groups(processes: list[subprocess.Popen], deadline: float) -> bool:
    """Waits until every leader is reaped and every group empty, or the deadline; whether they are."""
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    while any(group_members(p.pid) for p in processes):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return all(p.poll() is not None for p in processes)


def stop_groups(processes: Iterable[subprocess.Popen], timeout: float = 30.0) -> None:
    """SIGTERM to the group of each process (started by start_group), wait until every member of its
    group and session has exited, up to `timeout` seconds in all, then SIGKILL those still there."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None or group_members(process.pid):  # never a group number freed for reuse
            _signal(process.pid, signal.SIGTERM, group=True)
    if not _wait_for_groups(processes, time.monotonic() + timeout):
        # Every process left in the group or the session: a child that moved to a group of its own too.
        for _ in range(3):  # again for any forked meanwhile
            for member in (m for p in processes for m in group_members(p.pid)):
                _signal(member, signal.SIGKILL)
            if _wait_for_groups(processes, time.monotonic() + 5):
                break
    for process in processes:
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream:
                stream.close()


@contextmanager
def running(args: list[str], *, stop_timeout: float = 30.0, **popen) -> Iterator[subprocess.Popen]:
    """start_group(args), stopped with its group when the block ends, also when it fails."""
    process = start_group(args, **popen)
    try:
        yield process
    finally:
        stop_groups([process], timeout=stop_timeout)
