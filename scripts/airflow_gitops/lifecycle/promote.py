"""`promote --from staging --to prod`: carry a tested release to the next environment.

The release is the image (repository and tag), the Airflow version, any config keys named with
--key, and the DAG commit the source runs (through promote-dags, when the destination's DAGs are
promoted from the source). Promotion follows the order the inventory declares: the destination's
`promotion.from` must name the source. The source must be compiled, up to date, committed and
valid: the commit this prepares names the commit the release was tested at, and the DAG commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import gitcli, inventory
from ..venvs import cache_dir
from . import target_file, versions
from .errors import LifecycleError
from .workspace import Change

# What a release is: these keys of parameters.airflow travel together.
RELEASE_KEYS = (("version",), ("image", "repository"), ("image", "tag"), ("image", "carries_version"))
# The inputs whose committed state the provenance names.
SOURCE_INPUTS = (".kapitan", "inventory", "components", "kapitan")
PROMOTION_FROM = "parameters.airflow.promotion.from"


@dataclass
class ReleasePromotion:
    source: str
    destination: str
    source_commit: str  # the commit the source's release was compiled and validated at
    change: Change
    # (key under parameters.airflow, destination's value, source's value) for what moves
    moves: list[tuple[str, Any, Any]] = field(default_factory=list)
    dags: Any = None  # the dags.promote.Promotion a dry run found, or None when DAGs are not promoted


def check_order(root: Path, source: str, destination: str, params: dict[str, Any]) -> None:
    """The destination must receive its release from the source, as its inventory declares."""
    declared = inventory.promotion_source(root, destination, params)
    where = f"inventory/targets/{destination}.yml: {PROMOTION_FROM}"
    if not declared:
        raise LifecycleError(f"{where} is empty: {destination} receives no release by promotion; declare where it comes "
                             f"from (promotion: {{from: {source}}}) first, or set its version and image by hand")
    if declared != source:
        raise LifecycleError(f"{where} is {declared}: {destination} receives its release from {declared}, not from {source} "
                             f"(promoting out of order is refused); run `airflow-gitops promote --from {declared} --to {destination}`")


def _source_committed(root: Path, source: str) -> str:
    status = gitcli.run("status", "--porcelain", "--untracked-files=all", "--", *SOURCE_INPUTS, f"compiled/{source}",
                        cwd=root, check=False)
    if status.returncode != 0:
        raise LifecycleError(f"{root}: not a Git repository: a promotion is recorded in a commit")
    if status.stdout.strip():
        changed = ", ".join(line[3:] for line in status.stdout.splitlines()[:5])
        raise LifecycleError(f"uncommitted changes to the inventory or compiled/{source} ({changed}): commit them first, "
                             f"so that the promotion names the commit {source}'s release was tested at")
    if gitcli.run("var", "GIT_COMMITTER_IDENT", cwd=root, check=False).returncode != 0:
        raise LifecycleError("git has no committer identity here (user.name, user.email): a promotion is recorded in a commit")
    return gitcli.run("rev-parse", "HEAD", cwd=root).stdout.strip()


def plan(root: Path, source: str, destination: str, keys: list[str] | None = None) -> ReleasePromotion:
    for name, option in ((source, "--from"), (destination, "--to")):
        target_file.check_environment(root, name, option)
    if source == destination:
        raise LifecycleError(f"--from and --to both name {source}")
    if not (root / "compiled" / source).is_dir():
        raise LifecycleError(f"compiled/{source} does not exist: compile and commit {source} before promoting its release")
    cache = cache_dir(root)
    src = inventory.airflow_parameters(root, source, cache=cache)
    dst = inventory.airflow_parameters(root, destination, cache=cache)
    check_order(root, source, destination, dst)
    commit = _source_committed(root, source)
    old, new = str(dst["version"]), str(src["version"])
    if versions.parse(new, f"{source}'s version") < versions.parse(old, f"{destination}'s version"):
        raise LifecycleError(f"{source} runs Airflow {new} and {destination} {old}: promoting would downgrade {destination}, "
                             "and Airflow cannot migrate its database down; upgrade the source first")
    paths = list(RELEASE_KEYS)
    for key in keys or []:
        path = tuple(key.split("."))
        if target_file.get(src, path) is None:
            raise LifecycleError(f"--key {key}: {source} has no parameters.airflow.{key}")
        paths.append(path)
    origin = f"inventory/targets/{destination}.yml"
    document = target_file.load((root / origin).read_text(), origin)
    moves = []
    for path in paths:
        value, current = target_file.get(src, path), target_file.get(dst, path)
        if value is not None and value != current:
            target_file.set_value(document, ("parameters", "airflow", *path), value)
            moves.append((".".join(path), current, value))
    dags = None
    if dst.get("dags", {}).get("mode") != "pvc" and dst.get("dags", {}).get("git_sync", {}).get("promoted_from") == source:
        from ..dags.promote import promote as promote_dags

        dags = promote_dags(root, source, destination, dry_run=True)
    change = Change(writes={origin: target_file.dump(document)} if moves else {},
                    environments=[source, destination])
    return ReleasePromotion(source, destination, commit, change, moves, dags)


def commit_message(promotion: ReleasePromotion) -> str:
    release = {key: value for key, _, value in promotion.moves}
    summary = ", ".join(f"{k} {v}" for k, v in release.items()) or "no inventory change"
    lines = [f"promote {promotion.source} -> {promotion.destination}: {summary}", ""]
    lines.append(f"The release {promotion.source} runs at {promotion.source_commit[:12]} (compiled, up to date and valid):")
    lines += [f"  {key}: {old} -> {new}" for key, old, new in promotion.moves] or ["  (the inventory already matches)"]
    if promotion.dags is not None:
        d = promotion.dags
        lines.append(f"  DAGs: {d.kind} {d.target_ref} {(d.previous or 'nothing')[:12]} -> {d.commit[:12]} "
                     f"(what {promotion.source} runs on {d.source_ref})")
    lines += ["", f"Promoted-from: {promotion.source}", f"Promoted-from-commit: {promotion.source_commit}"]
    if promotion.dags is not None:
        lines.append(f"Promoted-dags: {promotion.dags.commit}")
    return "\n".join(lines) + "\n"


def record(root: Path, promotion: ReleasePromotion, paths: list[str]) -> str:
    """Commit the promotion's files with its provenance; the new commit's id."""
    gitcli.run("add", "-A", "--", *paths, cwd=root)
    staged = gitcli.run("diff", "--cached", "--quiet", "--", *paths, cwd=root, check=False)
    if staged.returncode == 0 and promotion.dags is None:
        return ""
    gitcli.run("commit", "-q", "--allow-empty", "-m", commit_message(promotion), "--", *paths, cwd=root)
    return gitcli.run("rev-parse", "HEAD", cwd=root).stdout.strip()
