"""The DAG source tree as Airflow would see it: `.airflowignore` honoured, no byte-code."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pathspec

IGNORE_FILE = ".airflowignore"
_NEVER = {"__pycache__", ".git"}


@dataclass(frozen=True)
class SourceFile:
    path: str  # POSIX path relative to the source root
    digest: str  # sha256 of the content

    @property
    def is_python(self) -> bool:
        return self.path.endswith(".py")


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_ignore(directory: Path) -> pathspec.PathSpec | None:
    ignore = directory / IGNORE_FILE
    if not ignore.is_file():
        return None
    # Airflow 3's default `dag_ignore_file_syntax = glob` follows gitignore rules.
    return pathspec.PathSpec.from_lines("gitignore", ignore.read_text().splitlines())


def _ignored(relative: str, is_dir: bool, rules: list[tuple[str, pathspec.PathSpec]]) -> bool:
    for base, spec in rules:
        candidate = relative[len(base) + 1:] if base else relative
        if spec.match_file(candidate + ("/" if is_dir else "")):
            return True
    return False


def scan(root: Path) -> dict[str, SourceFile]:
    """Every file Airflow would read under `root`, by relative path, with its content digest."""
    if not root.is_dir():
        raise FileNotFoundError(root)
    files: dict[str, SourceFile] = {}
    stack: list[tuple[Path, str, list[tuple[str, pathspec.PathSpec]]]] = [(root, "", [])]
    while stack:
        directory, relative_dir, inherited = stack.pop()
        rules = list(inherited)
        spec = _load_ignore(directory)
        if spec is not None:
            rules.append((relative_dir, spec))
        with os.scandir(directory) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                relative = f"{relative_dir}/{entry.name}" if relative_dir else entry.name
                if entry.name in _NEVER or entry.name.endswith((".pyc", ".pyo")):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if not _ignored(relative, True, rules):
                        stack.append((Path(entry.path), relative, rules))
                elif entry.is_file(follow_symlinks=False) and not _ignored(relative, False, rules):
                    files[relative] = SourceFile(relative, file_digest(Path(entry.path)))
    return dict(sorted(files.items()))
