"""`promote-dags`: point one environment's tracked DAG ref at the exact commit another runs.

prod then runs what staging tested. The ref moves only forward: when the target ref has commits
the source ref does not, the promotion is refused. The target's `dags.git_sync.ref_type` says
how: a branch is fast-forwarded, a tag is moved (with a lease on its old value).
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import gitcli
from ..errors import AirflowGitopsError
from .sync import destination_for


class PromotionError(AirflowGitopsError):
    """The promotion was refused or failed; the remote is unchanged."""


@dataclass(frozen=True)
class Promotion:
    repo: str
    source_ref: str
    target_ref: str
    commit: str
    previous: str | None
    kind: str  # branch | tag
    changed: bool


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


def promote(root: Path, source_env: str, target_env: str, repo: str | None = None) -> Promotion:
    source = destination_for(root, source_env, repo, None)
    target = destination_for(root, target_env, repo, None)
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
        return Promotion(url, source.branch, target.branch, commit, previous, kind, False)
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
        if previous and _git("merge-base", "--is-ancestor", previous, commit, cwd=work).returncode != 0:
            raise PromotionError(
                f"{target_env}'s {kind} {target.branch!r} ({previous[:12]}) has commits that {source_env}'s "
                f"{source.branch!r} ({commit[:12]}) does not: refusing to promote. Bring them into "
                f"{source.branch!r} (and test them there) first."
            )
        lease = f"--force-with-lease={full_ref}:{previous or ''}"
        refspec = f"{commit}:{full_ref}" if kind == "branch" else f"+{commit}:{full_ref}"
        pushed = _git("push", "-q", lease, url, refspec, cwd=work)
        if pushed.returncode != 0:
            raise PromotionError(f"push to {url} {full_ref} refused: {pushed.stderr.strip()}")
    return Promotion(url, source.branch, target.branch, commit, previous, kind, True)
