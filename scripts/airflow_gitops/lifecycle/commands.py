"""The four lifecycle commands end to end: plan, compile and validate the result beside the
repository, show what changes, then (unless a dry run) write it. Output goes to `out`."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from ..diff import render
from . import new_env as new_env_plan
from . import outside_git
from . import promote as promote_plan
from . import remove_env as remove_plan
from . import upgrade as upgrade_plan
from .workspace import Change, Result, apply, compiled_result, diff_result, validate_result


def _show_changes(root: Path, change: Change, result: Result, out: TextIO) -> None:
    lines = change.file_changes(root)
    if lines:
        out.write("Inventory:\n")
        out.writelines(line if line.endswith("\n") else line + "\n" for line in lines)
        out.write("\n")
    out.write(render.as_text(diff_result(root, result)))


def _finish(root: Path, change: Change, result: Result, dry_run: bool, out: TextIO) -> list[str]:
    _show_changes(root, change, result, out)
    if dry_run:
        out.write("\ndry run: nothing written\n")
        return []
    touched = apply(root, change, result)
    out.write(f"\nwritten: {', '.join(touched)}\n")
    return touched


def new_env(root: Path, name: str, source: str, dag_ref: str | None, settings: list[str], dry_run: bool,
            out: TextIO) -> None:
    planned = new_env_plan.plan(root, name, source, dag_ref, new_env_plan.parse_settings(settings))
    out.write(f"{name}: a copy of {source}\n")
    for key, old, new in planned.replaced:
        out.write(f"  {key}: {old} -> {new}\n")
    with compiled_result(root, planned.change) as result:
        validate_result(root, result, planned.change)
        from .. import inventory

        params = inventory.airflow_parameters(result.scratch, name)
        checklist = outside_git.checklist(name, params, result.compiled / name)
        out.write(f"{name} compiles and passes validate\n\n")
        _finish(root, planned.change, result, dry_run, out)
    out.write(f"\nBefore {name} runs, outside Git:\n")
    out.writelines(f"  [ ] {item}\n" for item in checklist)
    if not dry_run:
        out.write(f"\nThen commit inventory/targets/{name}.yml, compiled/ and kapitan/refs, and push.\n")


def promote(root: Path, source: str, destination: str, keys: list[str], dry_run: bool, out: TextIO) -> None:
    planned = promote_plan.plan(root, source, destination, keys)
    out.write(f"promote {source} -> {destination}: the release {source} runs at {planned.source_commit[:12]}\n")
    for key, old, new in planned.moves:
        out.write(f"  {key}: {old} -> {new}\n")
    if planned.dags is not None:
        d = planned.dags
        state = f"{(d.previous or 'nothing')[:12]} -> {d.commit[:12]}" if d.changed else f"already at {d.commit[:12]}"
        out.write(f"  DAGs: {d.kind} {d.target_ref} {state} (what {source} runs on {d.source_ref})\n")
    if not planned.moves and (planned.dags is None or not planned.dags.changed):
        out.write(f"{destination} already runs {source}'s release: nothing to promote\n")
        return
    with compiled_result(root, planned.change) as result:
        fresh, committed = result.compiled / source, root / "compiled" / source
        from ..validate.up_to_date import compare

        stale = compare(committed, fresh, f"compiled/{source}")
        if stale:
            from .errors import LifecycleError

            raise LifecycleError(f"compiled/{source} is not what its inventory compiles to: run `make compile` and commit, "
                                 "then promote what was tested:\n  " + stale[0].splitlines()[0])
        validate_result(root, result, planned.change)
        out.write(f"{source} is compiled, up to date and valid; {destination} compiles and passes validate\n\n")
        touched = _finish(root, planned.change, result, dry_run, out)
    if dry_run:
        return
    commit = promote_plan.record(root, planned, [p for p in touched if p != "compiled/"] + ["compiled"])
    out.write(f"committed {commit[:12]}:\n")
    out.writelines(f"    {line}\n" for line in promote_plan.commit_message(planned).splitlines())
    if planned.dags is not None and planned.dags.changed:
        from ..dags.promote import promote as promote_dags

        done = promote_dags(root, source, destination)
        out.write(f"DAGs: {done.kind} {done.target_ref} of {done.repo} now at {done.commit[:12]}\n")
    out.write(f"push the commit: {destination} follows once its GitOps engine reads it\n")


def upgrade(root: Path, target: str, to: str, image_tag: str | None, dry_run: bool, out: TextIO) -> None:
    planned = upgrade_plan.plan(root, target, to, image_tag)
    out.write(f"upgrade {target}: Airflow {planned.old} -> {planned.new}, image tag {planned.tag[0]} -> {planned.tag[1]}\n")
    if planned.recorded_options:
        out.write(f"  recorded the option list of Airflow {to} (generated with Airflow {to})\n")
    out.write(f"  no option {target} sets is renamed or removed in {to}\n")
    with compiled_result(root, planned.change) as result:
        validate_result(root, result, planned.change)
        out.write(f"{target} compiles and passes validate with Airflow {to}\n\n")
        _finish(root, planned.change, result, dry_run, out)
    for follower in planned.next_in_line:
        out.write(f"next: `airflow-gitops promote --from {target} --to {follower}` once {target} runs it well\n")


def remove_env(root: Path, name: str, dry_run: bool, out: TextIO) -> None:
    planned = remove_plan.plan(root, name)
    out.write(f"remove {name}: its target file, compiled/{name} (the GitOps engine's objects with it) and its refs\n")
    with compiled_result(root, planned.change) as result:
        validate_result(root, result, planned.change)
        out.write("the rest compiles; the bootstrap passes validate\n\n")
        _finish(root, planned.change, result, dry_run, out)
    if planned.engine == "argocd":
        out.write(f"\nArgo CD: re-apply the bootstrap (its AppProject) only once the Application airflow-{name} is gone "
                  f"(`kubectl -n argocd get application airflow-{name}` finds nothing): Argo CD does not delete objects in "
                  "a namespace its project no longer allows\n")
    if planned.left_behind:
        out.write(f"\nOnce the commit is pushed, the engine deletes {name}'s objects; these stay by design (data), "
                  "delete them for good when no longer wanted:\n")
        out.writelines(f"  {item}\n" for item in planned.left_behind)
