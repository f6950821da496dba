"""Shared fixtures: real compiles in temporary copies of the repository."""

from __future__ import annotations

import ctypes
import gc
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from airflow_gitops.kapitan_runner import run_kapitan
# Process groups: shared with `airflow-gitops up`, which starts its containers the same way.
from airflow_gitops.processes import ProcessInfo, command_line, descendants, group_members, running, start_group, stop_groups  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("dev", "staging", "prod")
# What a compile reads; compiled/ is copied too so "untouched on failure" can be checked.
COPIED = (".kapitan", "inventory", "components", "kapitan", "compiled")
KAPITAN = str(Path(sys.executable).with_name("kapitan"))


def copy_repo(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name)
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


# Longer than any compile of the suite takes; a kapitan still running then fails its test (and is
# stopped, workers included) instead of holding up the whole run.
KAPITAN_TIMEOUT_SECONDS = 300


def kapitan(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Kapitan as `make compile` runs it (through airflow_gitops.kapitan_main: the plain script's
    pool can hang for ever after a failing target, see airflow_gitops.kapitan_pool)."""
    try:
        return run_kapitan(list(args), root, timeout=KAPITAN_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"kapitan {' '.join(args)} was still running after {KAPITAN_TIMEOUT_SECONDS} s in {root}")


def compile_in(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = kapitan(root, "compile", *args)
    return result


def read_tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def assert_compile_refuses(root: Path, break_inventory: Callable[[], None], target_file: str, key: str, words: str) -> None:
    """After break_inventory(), a compile fails naming the target file and key, its message holds
    `words`, and compiled/ is left exactly as it was."""
    before = read_tree(root / "compiled")
    break_inventory()
    result = compile_in(root)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{target_file}: {key}: " in output, output[-1500:]
    assert words in output, output[-1500:]
    assert read_tree(root / "compiled") == before


# compiled/<env>/manifests/<group>/<kind>-<name>.yaml, applied in this order (one Flux
# Kustomization each); compiled/<env>/manifests/kustomization.yaml lists the three directories.
MANIFEST_GROUPS = ("base", "migrations", "workloads")


def manifest_files(compiled: Path, env: str) -> dict[str, Path]:
    """file name -> path of every object of compiled/<env>/manifests (kustomization.yaml files excluded)."""
    paths = [p for p in sorted((compiled / env / "manifests").rglob("*.yaml")) if p.name != "kustomization.yaml"]
    files = {p.name: p for p in paths}
    assert len(files) == len(paths), f"a file name occurs in two directories of compiled/{env}/manifests"
    return files


def load_manifests(compiled: Path, env: str) -> dict[str, dict]:
    """file name -> object, for compiled/<env>/manifests and its group directories."""
    return {name: yaml.safe_load(path.read_text()) for name, path in manifest_files(compiled, env).items()}


@pytest.fixture(scope="session")
def fresh_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository compiled from scratch (compiled/ removed first)."""
    root = copy_repo(tmp_path_factory.mktemp("fresh"))
    shutil.rmtree(root / "compiled", ignore_errors=True)
    result = compile_in(root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def manifest_reader(compiled: Path) -> Callable[[str], dict[str, dict]]:
    """env -> its objects (load_manifests), each environment read once."""
    cache: dict[str, dict[str, dict]] = {}

    def get(env: str) -> dict[str, dict]:
        if env not in cache:
            cache[env] = load_manifests(compiled, env)
        return cache[env]

    return get


@pytest.fixture(scope="session")
def manifests(fresh_repo: Path) -> Callable[[str], dict[str, dict]]:
    return manifest_reader(fresh_repo / "compiled")


@pytest.fixture
def scratch_repo(tmp_path: Path) -> Iterator[Path]:
    yield copy_repo(tmp_path / "repo")


def validate_object(obj: dict, kubernetes_version: str) -> None:
    """Strict Kubernetes schema validation; custom resources against our schemas of them (the
    validate command's own check)."""
    from airflow_gitops.validate.kubernetes_schemas import problems_of

    problems = problems_of(obj, REPO, kubernetes_version)
    assert not problems, f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}: {problems}"


def secret_file(root: Path, env: str, name: str) -> str:
    """The file of a shared Secret: a Secret, or the ExternalSecret that writes it."""
    mode = inventory_of(root, env)["airflow"]["secrets"]["mode"]
    return f"{'externalsecret' if mode == 'external-secrets' else 'secret'}-{name}.yaml"


def inventory_of(root: Path, env: str) -> dict:
    result = kapitan(root, "inventory", "-t", env)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["parameters"]


# --- Processes the tests start -------------------------------------------------------------------
# Whatever a test starts, it stops, children included: start long-lived processes with start_group()
# or running(), each in a process group (and session) of its own, and stop them with stop_groups(),
# which signals the whole group. Stopping only the leader leaves its children running (the
# scheduler's serve-logs and LocalExecutor workers, renamed by setproctitle, outlived it).
#
# The guard: this pytest process is made a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so that
# the orphans of its descendants are re-parented to it instead of init and stay its descendants.
# After each test, a descendant that was not there before it fails the test at teardown; at the
# end of the session, any descendant still running is reported and fails the session. Either way
# the processes are then killed.

PR_SET_CHILD_SUBREAPER = 36
# How long a new process may take to exit before it counts as left behind (git's detached auto-gc
# and the like are on their way out).
LEAK_GRACE_SECONDS = float(os.environ.get("AIRFLOW_GITOPS_TEST_LEAK_GRACE", "10"))


def _become_child_subreaper() -> bool:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux: only descendants not yet orphaned are seen
        return False


SUBREAPER = _become_child_subreaper()


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now (the kernel's pick), for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _still_running(new: Callable[[], dict[int, ProcessInfo]], grace: float) -> dict[int, ProcessInfo]:
    deadline = time.monotonic() + grace
    left = new()
    if left:  # objects a test dropped may own processes their finalizers stop (GitPython's git cat-file)
        gc.collect()
        left = new()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = new()
    return left


def _describe_and_kill(left: dict[int, ProcessInfo]) -> str:
    lines = [f"  pid {pid} (group {info.pgid}): {command_line(pid)}" for pid, info in sorted(left.items())]
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return "\n".join(lines)


@pytest.fixture(autouse=True)
def no_process_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails a test that leaves a process running (set up before any other fixture of the test's
    own, torn down after them: what they start and stop is not a leak)."""
    before = set(descendants())
    yield
    left = _still_running(lambda: {p: i for p, i in descendants().items() if p not in before}, LEAK_GRACE_SECONDS)
    if left:
        count = len(left)
        pytest.fail(f"{request.node.nodeid} left {count} process{'' if count == 1 else 'es'} running (now killed): "
                    "start them with conftest.start_group()/running() and stop them with stop_groups()\n"
                    + _describe_and_kill(left), pytrace=False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After every fixture is torn down: nothing the session started may still run."""
    left = _still_running(descendants, LEAK_GRACE_SECONDS)
    if left:
        message = _describe_and_kill(left)
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("!", "processes left running by the test session (now killed)", red=True)
            reporter.write_line(message)
        else:
            print(f"processes left running by the test session (now killed):\n{message}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    while True:  # reap the orphans this subreaper adopted (no test is waiting for anything now)
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
