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

        shutil.rmtree(path, ignore_errors=True)
        steps = [
            [sys.executable, "-m", "venv", str(path)],
            [str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *packages],
        ]
        for step in steps:
            result = subprocess.run(step, capture_output=True, text=True)
            if result.returncode != 0:
                shutil.rmtree(path, ignore_errors=True)
                raise AirflowEnvironmentError(
                    f"could not install {what} into {path}:\n" + "\n".join(result.stderr.strip().splitlines()[-15:])
                )
        (path / _READY_MARKER).write_text(" ".join(packages) + "\n")
    return path
