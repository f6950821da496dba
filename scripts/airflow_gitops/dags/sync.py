"""`sync-dags`: check the DAG sources of this repository and publish them to an environment's
DAG repository, branch and sub-path (the same inventory values its git-sync containers read)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import inventory
from ..airflow_env import cache_dir, ensure_airflow
from ..errors import AirflowGitopsError
from . import check, mirror, publish
from .source import scan


@dataclass(frozen=True)
class DagSource:
    """Where an environment's DAGs go, from its inventory (overridable for tests and one-offs)."""

    repo: str
    branch: str
    sub_path: str
    airflow_version: str
    ref_type: str = "branch"  # how promote-dags moves this ref: branch | tag


@dataclass
class SyncResult:
    target: str
    destination: DagSource
    status: str  # published | up-to-date | dry-run
    plan: mirror.Plan
    commit: str | None = None
    attempts: int = 0
    dag_files: int = 0
    imported: int = 0
    cached: int = 0
    source_revision: str = ""
    dirty: bool = False
    dag_ids: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target, "status": self.status, "repo": self.destination.repo,
            "branch": self.destination.branch, "sub_path": self.destination.sub_path,
            "commit": self.commit, "attempts": self.attempts, **self.plan.as_dict(),
            "check": {"dag_files": self.dag_files, "imported": self.imported, "cached": self.cached},
            "source": {"revision": self.source_revision, "dirty": self.dirty},
        }


def destination_for(root: Path, target: str, repo: str | None, branch: str | None) -> DagSource:
    params = inventory.airflow_parameters(root, target, cache=cache_dir(root))
    git_sync = params["dags"]["git_sync"]
    return DagSource(repo or git_sync["repo"], branch or git_sync["ref"], git_sync["sub_path"].strip("/"),
                     params["version"], git_sync.get("ref_type", "branch"))


def source_revision(root: Path, source: Path) -> tuple[str, bool]:
    """The commit the DAG sources come from, and whether they differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True).stdout.strip()
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
) -> SyncResult:
    destination = destination_for(root, target, repo, branch)
    source = (source or root / "dags").resolve()
    if not source.is_dir():
        raise AirflowGitopsError(f"{source}: no such DAG source directory")
    workers = workers or max(1, os.cpu_count() or 1)
    identity = publish.Identity.parse(author or os.environ.get("AIRFLOW_GITOPS_AUTHOR", "airflow-gitops <airflow-gitops@localhost>"))
    committer_identity = publish.Identity.parse(committer) if committer else identity
    sync_cache = Path(os.environ.get("AIRFLOW_GITOPS_SYNC_CACHE") or cache_dir(root))

    with publish.Publisher(url=destination.repo, branch=destination.branch, sub_path=destination.sub_path,
                           cache=sync_cache) as publisher, ThreadPoolExecutor(max_workers=2) as background:
        # Git waits on the network and the disk while the DAGs are checked.
        prepared = background.submit(publisher.prepare)
        revision_of_source = background.submit(source_revision, root, source)

        digest_cache = cache_dir(root) / "dag-source" / hashlib.sha256(str(source).encode()).hexdigest()[:16]
        files = scan(source, digest_cache.with_suffix(".json"))
        problems = check.check_syntax(source, files, workers, cache_dir(root) / "dag-check")
        if problems:
            raise check.DagCheckError(problems)
        report = check.CheckReport()
        if import_check:
            env = ensure_airflow(root, destination.airflow_version, requirements_of(source))
            report = check.check_imports(env, source, files, cache_dir(root) / "dag-check", workers)
        revision, dirty = revision_of_source.result()

        def mirror_into(target_dir: Path, tracked: dict[str, str]) -> mirror.Plan:
            plan = mirror.plan(files, target_dir, tracked)
            if not dry_run and not plan.empty:
                mirror.apply(plan, source, files, target_dir)
            return plan

        outcome = publisher.publish(
            mirror_into=mirror_into, prepared=prepared.result(),
            message=lambda plan: commit_message(target, revision, dirty, plan),
            author=identity, committer=committer_identity, dry_run=dry_run,
        )
    status = "dry-run" if dry_run else ("up-to-date" if outcome.commit is None else "published")
    return SyncResult(
        target=target, destination=destination, status=status, plan=outcome.plan, commit=outcome.commit,
        attempts=outcome.attempts, dag_files=report.checked, imported=report.imported, cached=report.cached,
        source_revision=revision, dirty=dirty, dag_ids=report.dag_ids,
    )
