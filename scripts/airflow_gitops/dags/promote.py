"""`promote-dags`: point one environment's tracked DAG ref at the exact commit another runs.

prod then runs what staging tested. The ref moves only forward: when the target ref has commits
the source ref does not, the promotion is refused, unless `reset` is asked for: then the ref is set
to the source's commit and the commits only the target had are dropped from it (and listed). The
target's `dags.git_sync.ref_type` says how: a branch is fast-forwarded, a tag is moved; either is
pushed with a lease on the value it was read with. The source environment defaults to the
target's `dags.git_sync.promoted_from`, and may not be another one.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import gitcli
from ..errors import AirflowGitopsError
from ..inventory import PROMOTED_FROM
from .sync import destination_for


class PromotionError(AirflowGitopsError):
    """The promotion was refused or failed; the remote is unchanged."""


@dataclass(frozen=True)
class Promotion:
    source_env: str
    repo: str
    source_ref: str
    target_ref: str
    commit: str
    previous: str | None
    kind: str  # branch | tag
    changed: bool
    # With reset: the commits the target's ref had and the source's lacks, now dropped from it
    # ("<short sha> <subject>", newest first).
    discarded: tuple[str, ...] = ()


def _git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return gitcli.run(*args, cwd=cwd, check=False)


def _remote_refs(url: str, name: str) -> dict[str, str]:
    listed = _git("ls-remote", url, f"refs/heads/{name}", f"refs/tags/{name}", f"refs/tags/{name}^{{}}")
    if listed.returncode != 0:
        raise PromotionError(f"cannot read {url}: {listed.stderr.strip()}")
    refs = {}
    for line in listed.stdout.splitlines():
        sha, ref = line.split("\t")
        refs[ref] = sha
    return refs


def _source_env(target_env: str, asked: str | None, promoted_from: str) -> str:
    where = f"inventory/targets/{target_env}.yml: {PROMOTED_FROM}"
    if asked is None:
        if not promoted_from:
            raise PromotionError(f"{where} is empty: name the environment to promote from with --from (or set promoted_from)")
        return promoted_from
    if promoted_from and asked != promoted_from:
        raise PromotionError(f"{where}: {target_env}'s DAGs are promoted from {promoted_from}, not from {asked}: run "
                             f"`airflow-gitops promote-dags --from {promoted_from} --to {target_env}`, or change promoted_from")
    return asked


def _discarded(work: Path, previous: str, commit: str) -> tuple[str, ...]:
    listed = _git("log", "--format=%h %s", "--abbrev=12", f"{commit}..{previous}", cwd=work)
    if listed.returncode != 0:
        raise PromotionError(f"cannot list the commits a reset would drop: {listed.stderr.strip()}")
    return tuple(listed.stdout.splitlines())


def promote(root: Path, source_env: str | None, target_env: str, repo: str | None = None,
            reset: bool = False, dry_run: bool = False) -> Promotion:
    """Move `target_env`'s DAG ref to the commit `source_env`'s ref points at (default: the target's
    promoted_from). With `reset`, also when the target's ref has commits the source lacks. With
    `dry_run`, every check is made and the promotion returned, but nothing is pushed."""
    target = destination_for(root, target_env, repo, None)
    source_env = _source_env(target_env, source_env, target.promoted_from)
    source = destination_for(root, source_env, repo, None)
    if source.repo != target.repo:
        raise PromotionError(
            f"{source_env} reads DAGs from {source.repo} but {target_env} from {target.repo}: "
            "promotion moves a ref inside one repository"
        )
    if source.sub_path != target.sub_path:
        raise PromotionError(f"{source_env} and {target_env} read different sub-paths ({source.sub_path!r}, {target.sub_path!r})")
    url = source.repo
    source_refs = _remote_refs(url, source.branch)
    commit = source_refs.get(f"refs/heads/{source.branch}") or source_refs.get(f"refs/tags/{source.branch}^{{}}") \
        or source_refs.get(f"refs/tags/{source.branch}")
    if not commit:
        raise PromotionError(f"{url}: {source_env}'s ref {source.branch!r} does not exist: sync its DAGs first")
    target_refs = _remote_refs(url, target.branch)
    kind = target.ref_type
    full_ref = f"refs/{'tags' if kind == 'tag' else 'heads'}/{target.branch}"
    other = f"refs/{'heads' if kind == 'tag' else 'tags'}/{target.branch}"
    if full_ref not in target_refs and other in target_refs:
        raise PromotionError(
            f"{url}: {target.branch!r} is a {'branch' if kind == 'tag' else 'tag'} there, but the inventory of "
            f"{target_env} says dags.git_sync.ref_type: {kind}"
        )
    previous = target_refs.get(f"{full_ref}^{{}}") or target_refs.get(full_ref)
    if previous == commit:
        return Promotion(source_env, url, source.branch, target.branch, commit, previous, kind, False)
    with tempfile.TemporaryDirectory(prefix="airflow-gitops-promote-") as tmp:
        work = Path(tmp)
        _git("init", "-q", "--bare", str(work))
        wanted = [f"+refs/heads/{source.branch}:refs/source"] if f"refs/heads/{source.branch}" in source_refs \
            else [f"+refs/tags/{source.branch}:refs/source"]
        if previous:
            wanted.append(f"+{full_ref}:refs/target")
        fetched = _git("fetch", "-q", url, *wanted, cwd=work)
        if fetched.returncode != 0:
            raise PromotionError(f"cannot fetch from {url}: {fetched.stderr.strip()}")
        discarded: tuple[str, ...] = ()
        if previous and _git("merge-base", "--is-ancestor", previous, commit, cwd=work).returncode != 0:
            if not reset:
                raise PromotionError(
                    f"{target_env}'s {kind} {target.branch!r} ({previous[:12]}) has commits that {source_env}'s "
                    f"{source.branch!r} ({commit[:12]}) does not: refusing to promote. Bring them into "
                    f"{source.branch!r} (and test them there) first, or drop them from {target.branch!r} with "
                    f"`airflow-gitops promote-dags --from {source_env} --to {target_env} --reset`."
                )
            discarded = _discarded(work, previous, commit)
        if dry_run:  # everything checked, nothing pushed
            return Promotion(source_env, url, source.branch, target.branch, commit, previous, kind, True, discarded)
        # The lease lets the push replace the ref (move a tag, drop commits with reset) only if it still
        # is what was read above. No `+` on the refspec: that would force the push past the lease.
        # (An annotated tag's lease is the tag object's id, what the ref holds, not the commit it names.)
        lease = f"--force-with-lease={full_ref}:{target_refs.get(full_ref, '')}"
        pushed = _git("push", "-q", lease, url, f"{commit}:{full_ref}", cwd=work)
        if pushed.returncode != 0:
            raise PromotionError(f"push to {url} {full_ref} refused: {pushed.stderr.strip()}")
    return Promotion(source_env, url, source.branch, target.branch, commit, previous, kind, True, discarded)
