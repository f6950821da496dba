"""Make a sub-path of a checkout an exact copy of the DAG source, touching only what we manage.

The files the tool put there are recorded in a manifest inside the sub-path; anything else in
the sub-path (or outside it) belongs to somebody else and is never modified or removed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..progress import Progress
from .source import SourceFile, file_digest

MANIFEST = ".airflow-gitops-managed.json"


@dataclass
class Plan:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def summary(self) -> str:
        return f"{len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed"

    def as_dict(self) -> dict[str, list[str]]:
        return {"added": self.added, "changed": self.changed, "removed": self.removed}


def read_manifest(target: Path) -> set[str]:
    path = target / MANIFEST
    if not path.is_file():
        return set()
    return set(json.loads(path.read_text()).get("files", []))


def plan(source: dict[str, SourceFile], target: Path, tracked: dict[str, str] | None = None) -> Plan:
    """What mirroring `source` into `target` (the sub-path directory) would do.

    `tracked` maps paths under `target` to their Git blob ids when `target` is a clean checkout,
    which spares reading every file again.
    """
    managed = read_manifest(target)
    result = Plan()
    for relative, item in source.items():
        if tracked is not None:
            current = tracked.get(relative)
        else:
            existing = target / relative
            current = file_digest(existing) if existing.is_file() else None
        if current is None:
            result.added.append(relative)
        elif relative not in managed or current != item.digest:
            result.changed.append(relative)
    result.removed = sorted(p for p in managed - set(source) if (target / p).exists())
    return result


def apply(plan_: Plan, source_root: Path, source: dict[str, SourceFile], target: Path) -> None:
    """Carry out a plan and record the managed files."""
    copies = plan_.added + plan_.changed
    with Progress("mirroring", len(copies)) as progress:
        for relative in copies:
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source_root / relative, destination)
            progress.advance()
    for relative in plan_.removed:
        (target / relative).unlink(missing_ok=True)
        parent = (target / relative).parent
        while parent != target and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    target.mkdir(parents=True, exist_ok=True)
    (target / MANIFEST).write_text(json.dumps({"managed_by": "airflow-gitops sync-dags", "files": sorted(source)}, indent=1) + "\n")
