"""The DAG source tree as Airflow would see it: `.airflowignore` honoured, no byte-code."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pathspec


IGNORE_FILE = ".airflowignore"
_NEVER = {"__pycache__", ".git"}


@dataclass(frozen=True)
class SourceFile:
    path: str  # POSIX path relative to the source root
    digest: str  # Git blob id of the content, so it compares directly with a checkout's index

    @property
    def is_python(self) -> bool:
        return self.path.endswith(".py")


def file_digest(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _load_ignore(directory: Path) -> "pathspec.PathSpec | None":
    ignore = directory / IGNORE_FILE
    if not ignore.is_file():
        return None
    import pathspec

    # Airflow 3's default `dag_ignore_file_syntax = glob` follows gitignore rules.
    return pathspec.PathSpec.from_lines("gitignore", ignore.read_text().splitlines())


def _ignored(relative: str, is_dir: bool, rules: list[tuple[str, "pathspec.PathSpec"]]) -> bool:
    for base, spec in rules:
        candidate = relative[len(base) + 1:] if base else relative
        if spec.match_file(candidate + ("/" if is_dir else "")):
            return True
    return False


class _DigestCache:
    """Digests remembered by (mtime, size), like Git's index, so an unchanged file is not re-read."""

    def __init__(self, path: Path | None):
        self.path = path
        self.entries: dict[str, list] = {}
        self.fresh: dict[str, list] = {}
        if path and path.is_file():
            try:
                self.entries = json.loads(path.read_text())
            except ValueError:
                self.entries = {}

    def digest(self, relative: str, entry: os.DirEntry) -> str:
        stat = entry.stat(follow_symlinks=False)
        known = self.entries.get(relative)
        if known and known[0] == stat.st_mtime_ns and known[1] == stat.st_size:
            digest = known[2]
        else:
            digest = file_digest(Path(entry.path))
        self.fresh[relative] = [stat.st_mtime_ns, stat.st_size, digest]
        return digest

    def save(self) -> None:
        if self.path and self.fresh != self.entries:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.fresh))
            tmp.replace(self.path)


def scan(root: Path, digest_cache: Path | None = None) -> dict[str, SourceFile]:
    """Every file Airflow would read under `root`, by relative path, with its content digest."""
    if not root.is_dir():
        raise FileNotFoundError(root)
    cache = _DigestCache(digest_cache)
    files: dict[str, SourceFile] = {}
    stack: list[tuple[Path, str, list[tuple[str, "pathspec.PathSpec"]]]] = [(root, "", [])]
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
                    files[relative] = SourceFile(relative, cache.digest(relative, entry))
    cache.save()
    return dict(sorted(files.items()))
