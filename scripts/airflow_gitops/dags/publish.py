"""Commit the mirrored DAGs and push them, retrying on a remote that moved meanwhile.

The remote is only ever changed by one `git push` of a fast-forward: a refusal, a failure or an
interruption before it leaves the remote exactly as it was. The local work directory is a cache;
whatever state an interrupted run left it in is reset on the next run.
"""

from __future__ import annotations

import fcntl
import hashlib
import random
import shutil
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import git

from ..errors import AirflowGitopsError
from .mirror import MANIFEST, Plan


class PublishError(AirflowGitopsError):
    """The DAG repository could not be read or updated."""


@dataclass(frozen=True)
class Identity:
    name: str
    email: str

    @classmethod
    def parse(cls, text: str) -> "Identity":
        if "<" not in text or not text.rstrip().endswith(">"):
            raise PublishError(f"--author {text!r}: expected 'Name <email>'")
        name, email = text.rsplit("<", 1)
        return cls(name.strip(), email.rstrip().rstrip(">").strip())


@dataclass(frozen=True)
class Outcome:
    commit: str | None  # None: nothing to publish
    plan: Plan
    attempts: int


def workdir_for(cache: Path, url: str, branch: str) -> Path:
    return cache / "sync-dags" / hashlib.sha256(f"{url}\n{branch}".encode()).hexdigest()[:16]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _open_checkout(workdir: Path, url: str) -> git.Repo:
    """The cached clone, repaired or re-created if an earlier run was interrupted."""
    # Imported here: GitPython's import (~50 ms) then runs in prepare()'s thread, beside the checks.
    import git
    if (workdir / ".git").is_dir():
        try:
            repo = git.Repo(workdir)
            (workdir / ".git" / "index.lock").unlink(missing_ok=True)
            if repo.remotes.origin.url != url:
                repo.remotes.origin.set_url(url)
            return repo
        except (git.InvalidGitRepositoryError, git.GitCommandError, ValueError, AttributeError):
            pass
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    repo = git.Repo.init(workdir)
    repo.create_remote("origin", url)
    return repo


def _sync_to_remote(repo: git.Repo, branch: str) -> None:
    """Reset the checkout to the remote branch (an empty orphan branch when it does not exist yet)."""
    import git
    try:
        repo.git.fetch("--quiet", "--no-tags", "--depth=1", "origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}")
        exists = True
    except git.GitCommandError as error:
        if "couldn't find remote ref" not in str(error) and "could not find remote ref" not in str(error).lower():
            raise PublishError(f"cannot fetch {branch} from {repo.remotes.origin.url}: {error.stderr.strip()}") from None
        exists = False
    if exists:
        repo.git.checkout("--quiet", "--force", "-B", branch, f"refs/remotes/origin/{branch}")
    else:
        repo.git.checkout("--quiet", "--force", "--orphan", branch)
        repo.git.rm("-rf", "--quiet", "--cached", "--ignore-unmatch", ".")
    repo.git.clean("-ffdxq")


def _tracked_blobs(repo: git.Repo, sub_path: str) -> dict[str, str]:
    """Blob ids of the files under `sub_path`, from the index of a freshly reset checkout."""
    listing = repo.git.ls_files("-s", "-z", "--", sub_path or ".")
    prefix = f"{sub_path}/" if sub_path else ""
    blobs = {}
    for record in filter(None, listing.split("\0")):
        meta, path = record.split("\t", 1)
        blobs[path[len(prefix):]] = meta.split()[1]
    return blobs


class Publisher:
    """One publication to `url`'s `branch`, holding the local clone's lock from start to end.

    `prepare()` (fetch and reset the cached clone) may run in a thread while the caller checks the
    DAGs; `publish()` then mirrors, commits and pushes, retrying from a fresh fetch when the remote
    moved meanwhile.
    """

    def __init__(self, *, url: str, branch: str, sub_path: str, cache: Path):
        self.url, self.branch, self.sub_path = url, branch, sub_path
        self.workdir = workdir_for(cache, url, branch)
        self._lock = _locked(self.workdir)

    def __enter__(self) -> "Publisher":
        self._lock.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._lock.__exit__(*exc)

    def prepare(self) -> git.Repo:
        repo = _open_checkout(self.workdir, self.url)
        _sync_to_remote(repo, self.branch)
        return repo

    def publish(
        self,
        *,
        mirror_into: Callable[[Path, dict[str, str]], Plan],
        message: Callable[[Plan], str],
        author: Identity,
        committer: Identity,
        prepared: git.Repo | None = None,
        max_attempts: int = 8,
        dry_run: bool = False,
    ) -> Outcome:
        """Mirror, commit and push until the push lands (a fast-forward) or attempts run out.

        `mirror_into(dir, tracked)` makes `dir` (the sub-path in the checkout) match the source and
        returns the plan it carried out; `tracked` maps the files under `dir` to their blob ids. With
        `dry_run` it must only plan.
        """
        import git

        sub_path = self.sub_path
        for attempt in range(1, max_attempts + 1):
            repo = prepared if (attempt == 1 and prepared is not None) else self.prepare()
            target = self.workdir / sub_path if sub_path else self.workdir
            plan_ = mirror_into(target, _tracked_blobs(repo, sub_path))
            if dry_run or plan_.empty:
                return Outcome(None, plan_, attempt)
            touched = plan_.added + plan_.changed + plan_.removed
            # Naming the paths spares Git a scan of every file on small changes to large trees.
            paths = [f"{sub_path}/{p}" if sub_path else p for p in touched] + [f"{sub_path}/{MANIFEST}" if sub_path else MANIFEST]
            repo.git.add("--all", "--", *(paths if len(paths) <= 200 else [sub_path or "."]))
            env = {
                "GIT_AUTHOR_NAME": author.name, "GIT_AUTHOR_EMAIL": author.email,
                "GIT_COMMITTER_NAME": committer.name, "GIT_COMMITTER_EMAIL": committer.email,
            }
            repo.git.commit("--quiet", "--no-verify", "-m", message(plan_), env=env)
            try:
                repo.git.push("--quiet", "--porcelain", "origin", f"HEAD:refs/heads/{self.branch}")
                return Outcome(repo.head.commit.hexsha, plan_, attempt)
            except git.GitCommandError as error:
                text = f"{error.stdout}\n{error.stderr}"
                if not any(s in text for s in ("[rejected]", "non-fast-forward", "fetch first", "cannot lock ref", "[remote rejected]")):
                    raise PublishError(f"push to {self.url} ({self.branch}) failed: {error.stderr.strip() or text.strip()}") from None
                # Someone pushed meanwhile: start again from their commit, with backoff and jitter.
                time.sleep(min(4.0, 0.1 * 2 ** (attempt - 1)) * (0.5 + random.random()))
        raise PublishError(f"gave up after {max_attempts} attempts: {self.url} ({self.branch}) kept moving during the sync")
