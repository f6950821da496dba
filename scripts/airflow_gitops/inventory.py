"""The one way to get an environment's merged parameters: ask Kapitan for them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


from .errors import InventoryError


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
    import yaml  # only on a cache miss: the edit loop's common path does not pay for these imports

    from .kapitan_runner import explain_failure, run_kapitan

    result = run_kapitan(["inventory", "-t", target], root)
    if result.returncode != 0:
        raise InventoryError(explain_failure(result.stdout + result.stderr))
    node = yaml.safe_load(result.stdout) or {}
    return node.get("parameters", {})


def _inventory_digest(root: Path) -> str:
    digest = hashlib.sha256((root / ".kapitan").read_bytes())
    for path in sorted((root / "inventory").rglob("*.yml")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:24]


def cached_target_parameters(root: Path, target: str, cache: Path) -> dict[str, Any]:
    """target_parameters, remembered until any inventory file changes (kapitan takes ~1 s to start)."""
    path = cache / "inventory" / f"{_inventory_digest(root)}-{target}.json"
    if path.is_file():
        return json.loads(path.read_text())
    params = target_parameters(root, target)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(params))
    tmp.replace(path)
    return params


def airflow_parameters(root: Path, target: str, cache: Path | None = None) -> dict[str, Any]:
    """`parameters.airflow` of a target."""
    params = cached_target_parameters(root, target, cache) if cache else target_parameters(root, target)
    if "airflow" not in params:
        raise InventoryError(f"inventory/targets/{target}.yml: parameters.airflow is missing: include the class airflow.defaults")
    return params["airflow"]
