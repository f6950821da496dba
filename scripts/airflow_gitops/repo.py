"""Locating the repository root, the way kapitan itself is run: from the Git top level."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .errors import RepositoryError


def find_root(start: Path | None = None) -> Path:
    """The Git top level containing `start` that holds a `.kapitan` file."""
    start = (start or Path.cwd()).resolve()
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=start, capture_output=True, text=True, check=True,
        ).stdout.strip()
        root = Path(top)
    except (subprocess.CalledProcessError, FileNotFoundError):
        root = start
    if not (root / ".kapitan").is_file():
        raise RepositoryError(
            f"{start}: not inside an Airflow GitOps repository (no .kapitan file at {root}). "
            "Run the command from your clone of the repository."
        )
    return root
