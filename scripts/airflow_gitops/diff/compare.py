"""`airflow-gitops diff`: two states of compiled/, per environment and object, with what they mean."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import refs, trees
from .errors import StaleCompiledError
from .impact import Impact, RefValues, analyse
from .objects import ObjectChange, compare_files


@dataclass
class EnvironmentDiff:
    name: str
    status: str  # added | removed | changed | unchanged
    objects: list[ObjectChange] = field(default_factory=list)
    impact: Impact = field(default_factory=Impact)


@dataclass
class DiffResult:
    base: str
    head: str
    environments: list[EnvironmentDiff]

    @property
    def dangers(self) -> int:
        return sum(len(e.impact.dangers) for e in self.environments)


def _check_up_to_date(root: Path) -> None:
    from .. import inventory
    from ..validate import up_to_date
    from ..validate.model import Context

    ctx = Context(root=root, environments=inventory.list_targets(root), include_bootstrap=True)
    outcomes = up_to_date.run(ctx)
    stale = [reason for target in ctx.targets if (outcome := outcomes.get(target)) and outcome.status == "fail"
             for reason in outcome.reasons]
    if stale:
        shown = "\n".join("  " + r.splitlines()[0] for r in stale[:10])
        more = f"\n  ... and {len(stale) - 10} more" if len(stale) > 10 else ""
        raise StaleCompiledError("compiled/ in the working tree is not what the inventory compiles to; run `make compile` "
                                 f"(or compare two commits with --base and --head):\n{shown}{more}")


def run_diff(root: Path, base: str | None = None, head: str | None = None, targets: list[str] | None = None,
             check_up_to_date: bool = True) -> DiffResult:
    """Compare compiled/ at base (default: the merge base with the default branch) with head
    (default: the working tree, checked up to date first)."""
    base_id = trees.resolve(root, base, "--base") if base else trees.default_base(root)
    if head is None:
        if check_up_to_date:
            _check_up_to_date(root)
        pair = trees.against_working_tree(root, base_id, targets)
        head_refs = root
    else:
        head_id = trees.resolve(root, head, "--head")
        pair = trees.between_commits(root, base_id, head_id, targets)
        head_refs = head_id
    return compare_pair(pair, targets, refs.values_between(root, base_id, head_refs))


def compare_pair(pair: trees.TreePair, targets: list[str] | None = None,
                 ref_values: RefValues | None = None) -> DiffResult:
    """What the changed files of `pair` mean, per environment (`ref_values`: the Kapitan refs on
    both sides, read to tell a fernet rotation's safe steps from a breaking one)."""
    environments = []
    for env in targets or pair.environments:
        status = ("added" if env not in pair.base_envs else "removed" if env not in pair.head_envs
                  else "changed" if pair.files.get(env) else "unchanged")
        objects = compare_files(pair.files.get(env, []))
        if status == "changed" and not objects:
            status = "unchanged"
        environments.append(EnvironmentDiff(env, status, objects, analyse(objects, status, ref_values)))
    return DiffResult(base=pair.base, head=pair.head, environments=environments)
