"""What makes a sub-path of the DAG repository an exact copy of the DAG source, touching only what we manage.

The files the tool put there are recorded in a manifest inside the sub-path; anything else in
the sub-path (or outside it) belongs to somebody else and is never modified or removed.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from ..errors import AirflowGitopsError
from .source import SourceFiles

MANIFEST = ".airflow-gitops-managed.json"


class MirrorError(AirflowGitopsError):
    """The sub-path holds something the mirror may not replace."""


class Plan(NamedTuple):
    added: list[str]
    changed: list[str]
    removed: list[str]
    # The manifest lists files that are no longer ours (removed by somebody else): rewritten, so
    # that a file of the same name added later by a person is never taken for ours.
    manifest_outdated: bool = False

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed or self.manifest_outdated)

    def summary(self) -> str:
        counts = f"{len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed"
        return counts + ("; list of managed files brought up to date" if self.manifest_outdated else "")

    def as_dict(self) -> dict[str, list[str] | bool]:
        return {"added": self.added, "changed": self.changed, "removed": self.removed,
                "managed_list_updated": self.manifest_outdated}


def manifest_text(source: SourceFiles) -> str:
    return json.dumps({"managed_by": "airflow-gitops sync-dags", "files": sorted(source)}, indent=1) + "\n"


def parse_manifest(text: str | bytes | None, where: str = MANIFEST) -> set[str]:
    """The managed files a manifest lists (none without one)."""
    if not text:
        return set()
    try:
        files = json.loads(text)["files"]
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise MirrorError(f"{where}: not a manifest written by sync-dags (a JSON object whose \"files\" lists "
                          "paths). Restore it from the DAG repository's history, or remove it to let sync-dags "
                          "take the sub-path over without removing anything.") from None
    return set(files)


def parent_dirs(path: str) -> list[str]:
    """a/b/c.py -> [a, a/b]."""
    return [path[:i] for i, c in enumerate(path) if c == "/"]


def _conflicts(added: list[str], tracked: dict[str, str], removed: list[str]) -> list[str]:
    """Added files that would replace a file or directory the mirror does not own (Git cannot hold a
    file and a directory of the same name)."""
    kept = tracked.keys() - set(removed)
    kept_dirs = {parent for path in kept for parent in parent_dirs(path)}
    problems = []
    for path in added:
        if path in kept_dirs:
            problems.append(f"{path}: the DAG repository has a directory of that name with files sync-dags does not manage")
        else:
            blocking = next((p for p in parent_dirs(path) if p in kept), None)
            if blocking is not None:
                problems.append(f"{path}: the DAG repository has a file {blocking} that sync-dags does not manage")
    return problems


def plan(source: SourceFiles, tracked: dict[str, str], managed: set[str]) -> Plan:
    """What mirroring `source` into the sub-path would do.

    `tracked` maps the paths under the sub-path to their Git blob ids, `managed` is what the
    manifest there lists: files we never put there are taken over only when the source has them
    too, and never removed.
    """
    if "" in tracked:
        raise MirrorError("the sub-path is a file in the DAG repository, not a directory")
    if MANIFEST in source:
        raise MirrorError(f"{MANIFEST}: the source may not hold a file of this name at its top: sync-dags keeps "
                          "its list of managed files there. Rename or move it.")
    added, changed = [], []
    for relative, digest in source.items():
        current = tracked.get(relative)
        if current is None:
            added.append(relative)
        elif relative not in managed or current != digest:
            changed.append(relative)
    added.sort()
    changed.sort()
    removed = sorted(p for p in managed - source.keys() if p in tracked)
    problems = _conflicts(added, tracked, removed) if added and tracked else []
    if problems:
        raise MirrorError("cannot mirror the DAGs without touching files sync-dags does not manage:\n  " + "\n  ".join(problems))
    return Plan(added, changed, removed, manifest_outdated=bool(managed - source.keys() - set(removed)))
