"""The one way to get an environment's merged parameters: ask Kapitan for them."""

from __future__ import annotations

import hashlib
import json
import os
import time
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
        raise InventoryError(explain_failure(result.stdout + result.stderr, root))
    node = yaml.safe_load(result.stdout) or {}
    return node.get("parameters", {})


def _inventory_digest(root: Path) -> str:
    digest = hashlib.sha256((root / ".kapitan").read_bytes())
    for path in sorted((root / "inventory").rglob("*.yml")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:24]


def _remembered(cache: Path, digest: str, target: str) -> Path:
    return cache / "inventory" / f"{digest}-{target}.json"


def _recall(path: Path) -> dict[str, Any] | None:
    """What was remembered at `path`; None when nothing is (or another checkout's prune removed it)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _remember(path: Path, params: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # a temporary file of this writer's own
    tmp.write_text(json.dumps(params))
    tmp.replace(path)


def cached_target_parameters(root: Path, target: str, cache: Path) -> dict[str, Any]:
    """target_parameters, remembered until any inventory file changes (kapitan takes most of a
    second to start)."""
    path = _remembered(cache, _inventory_digest(root), target)
    params = _recall(path)
    if params is None:
        params = target_parameters(root, target)
        _remember(path, params)
    return params


# Remembered parameters of an inventory that has since changed are removed after this long (every
# inventory edit remembers every environment's parameters again: ~8 KB each).
_STALE_AFTER_SECONDS = 24 * 3600


def all_target_parameters(root: Path, cache: Path) -> dict[str, dict[str, Any]]:
    """`parameters` of every target, remembered like cached_target_parameters. What is not
    remembered comes from one `kapitan inventory` of every target: one call per target made
    validate spend 38 s of 77 with 50 environments. Raises InventoryError when the inventory does
    not render (reclass-rs renders every target to render one: then no target can be read)."""
    digest = _inventory_digest(root)
    paths = {target: _remembered(cache, digest, target) for target in list_targets(root)}
    recalled = {target: params for target, path in paths.items() if (params := _recall(path)) is not None}
    if len(recalled) == len(paths):
        return recalled
    import yaml

    from .kapitan_runner import explain_failure, run_kapitan

    result = run_kapitan(["inventory"], root)
    if result.returncode != 0:
        raise InventoryError(explain_failure(result.stdout + result.stderr, root))
    nodes = yaml.load(result.stdout, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    every = {target: (nodes.get(target) or {}).get("parameters", {}) for target in paths}
    for target, path in paths.items():
        _remember(path, every[target])
    _forget_stale(cache / "inventory", digest)
    return every


def _forget_stale(directory: Path, digest: str) -> None:
    """Removes what was remembered of other inventories more than a day ago."""
    limit = time.time() - _STALE_AFTER_SECONDS
    for path in directory.glob("*.json"):
        try:
            if not path.name.startswith(digest) and path.stat().st_mtime < limit:
                path.unlink()
        except OSError:
            pass


def airflow_of(target: str, params: dict[str, Any]) -> dict[str, Any]:
    """`parameters.airflow` out of a target's `parameters`."""
    if "airflow" not in params:
        raise InventoryError(f"inventory/targets/{target}.yml: parameters.airflow is missing: include the class airflow.defaults")
    return params["airflow"]


def close_matches(name: str, candidates: list[str]) -> list[str]:
    """The candidates `name` was probably meant to be: only those about as close as the best, since
    dotted class names share long prefixes that make every sibling look close."""
    import difflib

    scored = sorted(((difflib.SequenceMatcher(None, name, c).ratio(), c) for c in candidates), reverse=True)
    best = scored[0][0] if scored else 0.0
    return [c for ratio, c in scored[:3] if ratio >= 0.6 and ratio >= best - 0.05]


def _did_you_mean(matches: list[str]) -> str:
    return f"did you mean {' or '.join(matches)}?" if matches else ""


def target_file(root: Path, node: str) -> str:
    """The file of a target reclass names `node` (inventory/targets/<node>.yml, or deeper)."""
    targets_dir = root / "inventory" / "targets"
    found = sorted(targets_dir.rglob(f"{node}.yml"), key=lambda p: len(p.parts))
    return str((found[0] if found else targets_dir / f"{node}.yml").relative_to(root))


def class_names(root: Path) -> list[str]:
    """Every class of the inventory, as targets name it: inventory/classes/a/b.yml (or a/b/init.yml) is a.b."""
    classes_dir = root / "inventory" / "classes"
    names = set()
    for path in classes_dir.rglob("*.yml"):
        parts = path.relative_to(classes_dir).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "init" else parts
        if parts:
            names.add(".".join(parts))
    return sorted(names)


def _classes_listed(path: Path) -> list[str]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return []
    classes = data.get("classes") if isinstance(data, dict) else None
    return [str(c) for c in classes] if isinstance(classes, list) else []


# What explains a class name to someone who misspelt it: how names map to files, on one example.
_CLASS_EXAMPLE = "airflow.executor.local"


def missing_class_hint(root: Path, node: str, name: str) -> str:
    """What to add to reclass's "Class NAME not found" for target `node`: the class file that lists
    the name when the target itself does not, and the classes it probably meant."""
    notes = []
    if name not in _classes_listed(root / target_file(root, node)):
        listing = sorted(str(p.relative_to(root)) for p in (root / "inventory" / "classes").rglob("*.yml")
                         if name in _classes_listed(p))
        if listing:
            notes.append(f"listed in {', '.join(listing)}")
    known = class_names(root)
    matches = close_matches(name, known)
    if matches:
        notes.append(_did_you_mean(matches))
    else:
        how = "a class is named by its file's path under inventory/classes/, dots for slashes, without .yml"
        if _CLASS_EXAMPLE in known:
            how += f": {_CLASS_EXAMPLE} is inventory/classes/{_CLASS_EXAMPLE.replace('.', '/')}.yml"
        notes.append(f"no inventory/classes/{name.replace('.', '/')}.yml; {how}")
    return f" ({'; '.join(notes)})"


PROMOTED_FROM = "parameters.airflow.dags.git_sync.promoted_from"


def _other_environment(root: Path, target: str, key: str, source: str, what: str) -> str:
    """`source`, checked to name an environment other than `target` (`key` names the setting and
    `what` what the target receives from it)."""
    where = f"inventory/targets/{target}.yml: {key}"
    if source == target:
        raise InventoryError(f"{where}: {source!r} is this environment itself: name the environment whose {what} "
                             f"(e.g. staging), or leave it empty")
    known = [t for t in list_targets(root) if t != "bootstrap"]
    if source not in known:
        hint = _did_you_mean(close_matches(source, known))
        raise InventoryError(f"{where}: {source!r} is not an environment ({hint + ' ' if hint else ''}"
                             f"known: {', '.join(known)})")
    return source


def promoted_from(root: Path, target: str, params: dict[str, Any]) -> str:
    """`dags.git_sync.promoted_from` of a target's parameters.airflow: "" (its DAGs are synced) or the
    environment its DAGs are promoted from. Raises InventoryError when that is no other environment."""
    source = str(params.get("dags", {}).get("git_sync", {}).get("promoted_from") or "")
    return _other_environment(root, target, PROMOTED_FROM, source, f"DAGs {target} receives by promote-dags") if source else ""


PROMOTION_FROM = "parameters.airflow.promotion.from"


def promotion_source(root: Path, target: str, params: dict[str, Any]) -> str:
    """`promotion.from` of a target's parameters.airflow: "" or the environment whose release it
    receives by promote. Raises InventoryError when that is no other environment, or when its DAGs
    are promoted from a different one (a release and its DAGs travel together)."""
    source = str(params.get("promotion", {}).get("from") or "")
    if not source:
        return ""
    _other_environment(root, target, PROMOTION_FROM, source, f"release {target} receives by promote")
    dags_from = str(params.get("dags", {}).get("git_sync", {}).get("promoted_from") or "")
    if dags_from and dags_from != source:
        raise InventoryError(f"inventory/targets/{target}.yml: {PROMOTION_FROM}: {source!r}, but {PROMOTED_FROM} is "
                             f"{dags_from!r}: a release and its DAGs are promoted from the same environment; make them equal")
    return source


def airflow_parameters(root: Path, target: str, cache: Path | None = None) -> dict[str, Any]:
    """`parameters.airflow` of a target."""
    return airflow_of(target, cached_target_parameters(root, target, cache) if cache else target_parameters(root, target))


def parameters_of_others(root: Path, target: str, cache: Path) -> dict[str, dict[str, Any]]:
    """parameters.airflow of every environment but `target` (what refers to it, what it shares)."""
    return {other: airflow_of(other, params) for other, params in all_target_parameters(root, cache).items() if other != target}
