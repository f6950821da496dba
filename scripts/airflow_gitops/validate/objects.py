"""Reading a target's compiled objects (every YAML file except kustomize's own)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import yaml

KUSTOMIZATION = "kustomization.yaml"


def object_files(target_dir: Path) -> list[Path]:
    return [p for p in sorted(target_dir.rglob("*.yaml")) if p.name != KUSTOMIZATION]


def load_objects(target_dir: Path, root: Path) -> Iterator[tuple[str, dict]]:
    """(path relative to the repository, object) for each object file; an unreadable file is an
    error for the caller to report."""
    for path in object_files(target_dir):
        yield str(path.relative_to(root)), yaml.safe_load(path.read_text())
