"""The one way to get an environment's merged parameters: ask Kapitan for them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import InventoryError
from .kapitan_runner import explain_failure, run_kapitan


def list_targets(root: Path) -> list[str]:
    """Environment names: one file per environment under inventory/targets/."""
    targets_dir = root / "inventory" / "targets"
    return sorted(p.stem for p in targets_dir.glob("*.yml"))


def target_parameters(root: Path, target: str) -> dict[str, Any]:
    """`parameters` of a target exactly as Kapitan merges them (classes, overrides, interpolation)."""
    if target not in list_targets(root):
        raise InventoryError(
            f"inventory/targets/{target}.yml: no such environment "
            f"(known: {', '.join(list_targets(root)) or 'none'})"
        )
    result = run_kapitan(["inventory", "-t", target], root)
    if result.returncode != 0:
        raise InventoryError(explain_failure(result.stdout + result.stderr))
    node = yaml.safe_load(result.stdout) or {}
    return node.get("parameters", {})


def airflow_parameters(root: Path, target: str) -> dict[str, Any]:
    """`parameters.airflow` of a target."""
    params = target_parameters(root, target)
    if "airflow" not in params:
        raise InventoryError(f"inventory/targets/{target}.yml: parameters.airflow is missing: include the class airflow.defaults")
    return params["airflow"]
