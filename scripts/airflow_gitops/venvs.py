"""Isolated virtualenvs for tools whose dependencies clash with Kapitan's (Airflow, checkov).

Each lives under `.cache/` (or $AIRFLOW_GITOPS_CACHE), is created on first use and reused; a
directory name that covers the pinned packages means a change of pins builds a fresh one.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from .errors import AirflowEnvironmentError

_READY_MARKER = ".ready"


def cache_dir(root: Path) -> Path:
    override = os.environ.get("AIRFLOW_GITOPS_CACHE")
    return Path(override) if override else root / ".cache"


def ensure_venv(path: Path, packages: list[str], what: str) -> Path:
    """The virtualenv at `path` with `packages` installed, created if missing. Safe against
    concurrent callers; an interrupted install is rebuilt from scratch."""
    if (path / _READY_MARKER).exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f"{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (path / _READY_MARKER).exists():
            return path
        import shutil  # only when building: sync-dags reaches this module for cache_dir on its hot path

        for install in _installers(path, packages):
            shutil.rmtree(path, ignore_errors=True)
            failure = _run_steps(install)
            if failure is None:
                break
        else:
            shutil.rmtree(path, ignore_errors=True)
            raise AirflowEnvironmentError(f"could not install {what} into {path}:\n{failure}")
        (path / _READY_MARKER).write_text(" ".join(packages) + "\n")
    return path


def _uv() -> str | None:
    """The uv installed beside this Python (a pinned dependency), else one on PATH."""
    beside = Path(sys.executable).with_name("uv")
    if beside.exists():
        return str(beside)
    import shutil

    return shutil.which("uv")


def _installers(path: Path, packages: list[str]) -> list[list[list[str]]]:
    """The ways to build the virtualenv, in order: uv installs Apache Airflow in seconds where pip
    takes about 40 s (the first `validate` of a fresh clone waited for it); pip, which reads the
    machine's pip configuration (a company index, say) that uv does not, if uv fails."""
    python = str(path / "bin" / "python")
    with_pip = [[sys.executable, "-m", "venv", str(path)],
                [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *packages]]
    uv = _uv()
    if uv is None or os.environ.get("AIRFLOW_GITOPS_INSTALLER") == "pip":
        return [with_pip]
    with_uv = [[sys.executable, "-m", "venv", "--without-pip", str(path)],
               [uv, "pip", "install", "--quiet", "--python", python, *packages]]
    return [with_uv, with_pip]


def _run_steps(steps: list[list[str]]) -> str | None:
    """None when every step succeeded, else the end of the failing step's output."""
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True)
        if result.returncode != 0:
            return "\n".join(result.stderr.strip().splitlines()[-15:])
    return None
