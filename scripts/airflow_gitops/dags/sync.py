"""`sync-dags`: check the DAG sources of this repository and publish them to an environment's
DAG repository, branch and sub-path (the same inventory values its git-sync containers read)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

from .. import gitcli, inventory
from ..errors import AirflowGitopsError
from ..venvs import cache_dir
from . import check, mirror, publish
from .source import scan

T = TypeVar("T")


class DirectSyncRefused(AirflowGitopsError):
    """The environment's DAGs arrive by promote-dags: publishing to it directly would give its ref
    commits the source environment lacks, and every later promotion would be refused."""

    def __init__(self, target: str, source: str):
        super().__init__(
            f"inventory/targets/{target}.yml: {inventory.PROMOTED_FROM} is {source!r}: {target}'s DAGs arrive by "
            f"promotion, not by sync-dags. Sync {source} (`airflow-gitops sync-dags --target {source}`), test there, "
            f"then run `airflow-gitops promote-dags --from {source} --to {target}`. Nothing was pushed. "
            f"(`sync-dags --allow-promoted` publishes to {target} anyway; its ref then has commits {source} lacks, and "
            f"promotion is refused until `promote-dags --from {source} --to {target} --reset` drops them.)"
        )


class DagSource(NamedTuple):
    """Where an environment's DAGs go, from its inventory (overridable for tests and one-offs)."""

    repo: str
    branch: str
    sub_path: str
    airflow_version: str
    ref_type: str = "branch"  # how promote-dags moves this ref: branch | tag
    promoted_from: str = ""  # the environment whose DAGs promote-dags brings here ("" = synced directly)


class SyncResult(NamedTuple):
    target: str
    destination: DagSource
    status: str  # published | up-to-date | dry-run
    plan: mirror.Plan
    commit: str | None
    attempts: int  # pushes tried
    dag_files: int
    imported: int
    cached: int
    source_revision: str
    dirty: bool
    dag_ids: dict[str, list[str]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target, "status": self.status, "repo": self.destination.repo,
            "branch": self.destination.branch, "sub_path": self.destination.sub_path,
            "commit": self.commit, "attempts": self.attempts, **self.plan.as_dict(),
            "check": {"dag_files": self.dag_files, "imported": self.imported, "cached": self.cached},
            "source": {"revision": self.source_revision, "dirty": self.dirty},
        }


class _InBackground(threading.Thread, Generic[T]):
    """A call run beside the DAG checks (Git waits on the disk and the network meanwhile)."""

    def __init__(self, call: Callable[..., T], *args: Any):
        super().__init__(daemon=True)
        self._call, self._args = call, args
        self._value: T | None = None
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._value = self._call(*self._args)
        except BaseException as error:  # handed to the caller by result()
            self._error = error

    def result(self) -> T:
        self.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


def destination_for(root: Path, target: str, repo: str | None, branch: str | None) -> DagSource:
    params = inventory.airflow_parameters(root, target, cache=cache_dir(root))
    git_sync = params["dags"]["git_sync"]
    return DagSource(repo or git_sync["repo"], branch or git_sync["ref"], git_sync["sub_path"].strip("/"),
                     params["version"], git_sync.get("ref_type", "branch"), inventory.promoted_from(root, target, params))


def source_revision(root: Path, source: Path) -> tuple[str, bool]:
    """The commit the DAG sources come from, and whether they differ from it."""
    def git(*args: str) -> str:
        return gitcli.run(*args, cwd=root, check=False).stdout.strip()
    revision = git("rev-parse", "HEAD") or "unknown"
    dirty = bool(git("status", "--porcelain", "--untracked-files=all", "--", str(source)))
    return revision, dirty


def requirements_of(source: Path) -> tuple[str, ...]:
    path = source / "requirements.txt"
    if not path.is_file():
        return ()
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return tuple(sorted(line for line in lines if line))


def commit_message(target: str, revision: str, dirty: bool, plan: mirror.Plan) -> str:
    state = " (with uncommitted changes)" if dirty else ""
    return (
        f"Sync DAGs for {target} from {revision[:12]}{state}\n\n"
        f"{plan.summary()}.\n\nSource-Commit: {revision}\nSource-Dirty: {str(dirty).lower()}\n"
    )


def sync_dags(
    root: Path,
    target: str,
    *,
    source: Path | None = None,
    repo: str | None = None,
    branch: str | None = None,
    dry_run: bool = False,
    import_check: bool = True,
    author: str | None = None,
    committer: str | None = None,
    workers: int | None = None,
    allow_promoted: bool = False,
) -> SyncResult:
    """Check the DAG sources and publish them to `target`'s DAG ref. An environment whose DAGs are
    promoted (dags.git_sync.promoted_from) is refused, dry runs included, unless `allow_promoted`."""
    destination = destination_for(root, target, repo, branch)
    if destination.promoted_from and not allow_promoted:
        raise DirectSyncRefused(target, destination.promoted_from)
    source = (source or root / "dags").resolve()
    if not source.is_dir():
        raise AirflowGitopsError(f"{source}: no such DAG source directory")
    workers = workers or max(1, os.cpu_count() or 1)
    identity = publish.Identity.parse(author or os.environ.get("AIRFLOW_GITOPS_AUTHOR", "airflow-gitops <airflow-gitops@localhost>"))
    committer_identity = publish.Identity.parse(committer) if committer else identity
    sync_cache = Path(os.environ.get("AIRFLOW_GITOPS_SYNC_CACHE") or cache_dir(root))

    with publish.Publisher(url=destination.repo, branch=destination.branch, sub_path=destination.sub_path,
                           cache=sync_cache) as publisher:
        publisher.begin()  # git fetch runs while the DAGs are checked
        known = _InBackground(publisher.state)
        try:
            revision_of_source = _InBackground(source_revision, root, source)
            digest_cache = cache_dir(root) / "dag-source" / hashlib.sha256(str(source).encode()).hexdigest()[:16]
            files = scan(source, digest_cache)
            problems = check.check_syntax(source, files, workers, cache_dir(root) / "dag-check")
            if problems:
                raise check.DagCheckError(problems)
            report = check.CheckReport()
            if import_check:
                from ..airflow_env import ensure_airflow

                env = ensure_airflow(root, destination.airflow_version, requirements_of(source))
                report = check.check_imports(env, source, files, cache_dir(root) / "dag-check", workers)
            revision, dirty = revision_of_source.result()
            state = known.result()
        finally:
            known.join()  # the cache is not released while its fetch is still running
        outcome = publisher.publish(
            source_root=source, files=files, state=state,
            message=lambda plan: commit_message(target, revision, dirty, plan),
            author=identity, committer=committer_identity, dry_run=dry_run,
        )
    status = "dry-run" if dry_run else ("up-to-date" if outcome.commit is None else "published")
    return SyncResult(
        target=target, destination=destination, status=status, plan=outcome.plan, commit=outcome.commit,
        attempts=outcome.attempts, dag_files=report.checked, imported=report.imported, cached=report.cached,
        source_revision=revision, dirty=dirty, dag_ids=report.dag_ids,
    )
