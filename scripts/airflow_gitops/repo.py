"""Locating the repository root, the way kapitan itself is run: from the Git top level."""

from __future__ import annotations

import os
from pathlib import Path

from . import gitcli
from .errors import RepositoryError


def _git_top_level(start: Path) -> Path | None:
    if "GIT_DIR" in os.environ or "GIT_WORK_TREE" in os.environ:  # Git's own discovery is overridden: ask Git
        result = gitcli.run("rev-parse", "--show-toplevel", cwd=start, check=False)
        return Path(result.stdout.strip()) if result.returncode == 0 else None
    # Git's discovery, without starting git (every command pays this, sync-dags' edit loop included):
    # the nearest directory holding `.git`, a directory or, for worktrees and submodules, a file.
    return next((d for d in (start, *start.parents) if (d / ".git").exists()), None)


def find_root(start: Path | None = None) -> Path:
    """The Git top level containing `start` that holds a `.kapitan` file."""
    start = (start or Path.cwd()).resolve()
    root = _git_top_level(start) or start
    if not (root / ".kapitan").is_file():
        raise RepositoryError(
            f"{start}: not inside an Airflow GitOps repository (no .kapitan file at {root}). "
            "Run the command from your clone of the repository."
        )
    return root
