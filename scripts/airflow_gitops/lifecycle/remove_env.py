"""`remove-env NAME`: take an environment out of Git.

Its target file, compiled tree (its Argo CD Application or Flux Kustomization with it) and refs
go; the engine then deletes its objects from the cluster, except what holds data, which both
engines are told to keep (the namespace, claims). What stays, and how to delete it for good, is
printed. An environment another one promotes from cannot be removed until that one is changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import inventory
from ..venvs import cache_dir
from . import outside_git, target_file
from .errors import LifecycleError
from .workspace import Change


@dataclass
class Removal:
    name: str
    change: Change
    left_behind: list[str] = field(default_factory=list)
    engine: str = "argocd"


def plan(root: Path, name: str) -> Removal:
    if name in target_file.NOT_ENVIRONMENTS:
        raise LifecycleError(f"{name} is not an environment: compiled/{name}/ brings every environment into a cluster")
    target_file.check_environment(root, name)
    cache = cache_dir(root)
    refs_in_use: set[tuple[str, str]] = set()
    for other, params in inventory.parameters_of_others(root, name, cache).items():
        git_sync = params.get("dags", {}).get("git_sync", {})
        refs_in_use.add((str(git_sync.get("repo", "")), str(git_sync.get("ref", ""))))
        for key, value in (("promotion.from", params.get("promotion", {}).get("from")),
                           ("dags.git_sync.promoted_from", params.get("dags", {}).get("git_sync", {}).get("promoted_from"))):
            if value == name:
                raise LifecycleError(f"inventory/targets/{other}.yml: parameters.airflow.{key} is {name}: {other} receives "
                                     f"from {name}; point it at another environment (or empty) first")
    params = inventory.airflow_parameters(root, name, cache=cache)
    compiled = root / "compiled" / name
    kept = outside_git.left_behind(name, params, compiled, refs_in_use) if compiled.is_dir() else []
    change = Change(removals=[f"inventory/targets/{name}.yml", f"kapitan/refs/targets/{name}"], bootstrap=True)
    return Removal(name, change, kept, str(params.get("gitops", {}).get("engine", "argocd")))
