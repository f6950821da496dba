"""Running the `git` program.

The DAG commands call Git's plumbing directly: on the edit loop's hot path, importing GitPython alone
(~60 ms) would cost most of sync-dags' time budget, and every call GitPython makes is this same
subprocess anyway.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .errors import AirflowGitopsError


class GitError(AirflowGitopsError):
    """A git command failed; `stderr` holds what Git said."""

    def __init__(self, args: list[str], returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr
        super().__init__(f"git {' '.join(args)} failed: {stderr.strip() or stdout.strip()}")


def _command(args: tuple[str, ...], git_dir: Path | None) -> list[str]:
    return ["git", *(["--git-dir", str(git_dir)] if git_dir else []), *args]


def run(*args: str, cwd: Path | None = None, git_dir: Path | None = None, input: str | bytes | None = None,
        env: dict[str, str] | None = None, check: bool = True, text: bool = True) -> subprocess.CompletedProcess:
    """`git args...`; raises GitError on a non-zero exit unless `check` is false. With `text` false,
    input and output are bytes (object contents, whose sizes Git gives in bytes)."""
    result = subprocess.run(_command(args, git_dir), cwd=cwd, input=input, capture_output=True, text=text,
                            env={**os.environ, **env} if env else None)
    if check and result.returncode != 0:
        said = [out if isinstance(out, str) else out.decode(errors="replace") for out in (result.stdout, result.stderr)]
        raise GitError(list(args), result.returncode, *said)
    return result


def start(*args: str, git_dir: Path | None = None, **popen: object) -> subprocess.Popen:
    """`git args...` started and left running (the caller waits for it): Git works meanwhile."""
    return subprocess.Popen(_command(args, git_dir), **popen)  # type: ignore[call-overload]
