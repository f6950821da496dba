"""Check 2: compile into a temporary directory and compare with compiled/ as it is in the working
tree (uncommitted edits included; what is committed or staged is not looked at). A hand edit or a
forgotten `make compile` shows as stale, with the files and a short diff: `-` lines are the working
tree's, `+` lines the fresh compile's."""

from __future__ import annotations

import difflib
from pathlib import Path

from ..compiled_tree import scratch_directory
from ..errors import CompileError
from ..kapitan_runner import copy_compile_inputs, fresh_compile
from .model import BOOTSTRAP, Context, Outcome

NAME = "up-to-date"
DIFF_LINES = 12


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()} if path.is_dir() else {}


def _short_diff(name: str, in_tree: bytes, fresh: bytes) -> str:
    lines = list(difflib.unified_diff(in_tree.decode(errors="replace").splitlines(),
                                      fresh.decode(errors="replace").splitlines(),
                                      f"{name} (working tree)", f"{name} (fresh compile)", lineterm="", n=1))
    shown = lines[:DIFF_LINES] + ([f"... ({len(lines) - DIFF_LINES} more lines)"] if len(lines) > DIFF_LINES else [])
    return "\n".join("    " + line for line in shown)


def compare(in_tree: Path, fresh: Path, prefix: str) -> list[str]:
    """Files that differ between a target's compiled/ in the working tree and a fresh compile of
    it, described for a reviewer."""
    old, new = _tree(in_tree), _tree(fresh)
    problems = []
    for name in sorted(old.keys() | new.keys()):
        path = f"{prefix}/{name}"
        if name not in new:
            problems.append(f"{path}: not produced by a compile (written by hand, or left from a removed component)")
        elif name not in old:
            problems.append(f"{path}: missing; run `make compile` and commit compiled/")
        elif old[name] != new[name]:
            problems.append(f"{path}: differs from a fresh compile (edited by hand, or compile not re-run)\n"
                            + _short_diff(path, old[name], new[name]))
    return problems


def run(ctx: Context) -> dict[str, Outcome]:
    # The inputs are copied so that refs a new target needs are not written into the checkout.
    with scratch_directory() as work:
        copy_compile_inputs(ctx.root, work)
        try:
            with fresh_compile(work) as fresh:
                outcomes = {t: Outcome.failed(compare(ctx.compiled / t, fresh.tree / t, f"compiled/{t}")) for t in ctx.targets}
                produced = {p.name for p in fresh.tree.iterdir()}
        except CompileError as error:
            return {t: Outcome.failed([f"the compile fails: {error}"]) for t in ctx.targets}
        leftovers = sorted(p.name for p in ctx.compiled.iterdir() if p.is_dir() and p.name not in produced) if ctx.compiled.is_dir() else []
    if leftovers and ctx.include_bootstrap:
        extra = [f"compiled/{name}/: no target compiles it any more; delete it" for name in leftovers]
        outcomes[BOOTSTRAP] = Outcome.failed(outcomes[BOOTSTRAP].reasons + extra)
    return outcomes
