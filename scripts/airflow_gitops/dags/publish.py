"""Commit the mirrored DAGs and push them, retrying on a remote that moved meanwhile.

The commit is built with Git's plumbing in a bare cache repository: blobs straight from the source
files, a tree made of the remote head's tree plus the plan, a commit whose parent is that head. There
is no work tree to check out, reset or clean, so a 5,000-file tree costs nothing to keep around.

The push carries a lease on the head the commit was built on: it lands only if the remote branch
still is exactly that commit. When somebody pushed meanwhile, the cache fetches again and the mirror
is redone on the new head, with backoff. So the remote is only ever changed by one push of a commit
made from one source on top of what the remote held: a refusal, a failure or an interruption before
it leaves the remote exactly as it was. The cache is rebuilt when it is unusable, and locks a killed
run left behind are removed (under our own lock, so no other sync is using them).
"""

from __future__ import annotations

import fcntl
import hashlib
import marshal
import os
import subprocess
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple

from .. import gitcli
from ..errors import AirflowGitopsError
from ..progress import Progress
from . import mirror
from .source import SourceFiles, blob_id

# Markers of a push refused because the remote moved (or another push holds its ref lock right
# now): fetch and redo. A lock a crashed push left on the server looks the same until we give up.
_MOVED = ("stale info", "fetch first", "non-fast-forward", "cannot lock ref", "incorrect old value")


class PublishError(AirflowGitopsError):
    """The DAG repository could not be read or updated."""


class Identity(NamedTuple):
    name: str
    email: str

    @classmethod
    def parse(cls, text: str) -> "Identity":
        if "<" not in text or not text.rstrip().endswith(">"):
            raise PublishError(f"--author {text!r}: expected 'Name <email>'")
        name, email = text.rsplit("<", 1)
        identity = cls(name.strip(), email.rstrip()[:-1].strip())
        if any(c in part for part in identity for c in "<>\n") or not identity.email:
            raise PublishError(f"--author {text!r}: expected 'Name <email>', with no '<', '>' or line break in the name or email")
        return identity


class RemoteState(NamedTuple):
    """The remote branch as the last fetch found it."""

    head: str | None  # None: the branch does not exist
    tracked: dict[str, str]  # files under the sub-path -> blob id (a sentinel for anything not a plain file)
    managed: set[str]  # the files the manifest at `head` lists


class _DamagedCache(PublishError):
    """The cache repository cannot be read: it is rebuilt from the remote."""


class Outcome(NamedTuple):
    commit: str | None  # None: nothing to publish
    plan: mirror.Plan
    attempts: int  # pushes tried


def workdir_for(cache: Path, url: str, branch: str) -> Path:
    return cache / "sync-dags" / hashlib.sha256(f"{url}\n{branch}".encode()).hexdigest()[:16]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _quoted(path: str) -> bytes:
    """A path as fast-import reads it: C-style quoted, so any file name is safe."""
    raw = os.fsencode(path).replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"\n", b"\\n")
    return b'"%s"' % raw


def _tracked_id(mode: str, kind: str, object_id: str) -> str:
    """A plain file's blob id; links and submodules get an id no file digest can equal."""
    return object_id if mode == "100644" and kind == "blob" else f"{mode}:{kind}:{object_id}"


def _parse_tree(listing: bytes, prefix: str) -> dict[str, str]:
    """`ls-tree -r -z` records under `prefix` -> blob id; links and submodules can never equal a file."""
    tracked = {}
    start = len(prefix) + 1
    for record in os.fsdecode(listing).split("\0"):
        tab = record.find("\t")
        if tab < 0:
            continue
        meta = record[:tab]  # "<mode> <type> <id>"
        mode, kind, object_id = meta.split(" ")
        tracked[record[tab + start:]] = _tracked_id(mode, kind, object_id)
    return tracked


class Publisher:
    """One publication to `url`'s `branch`, holding the cache's lock from start to end.

    `begin()` starts the fetch and `state()` (finish it, read the branch's files) may run in a
    thread while the caller checks the DAGs; `publish()` then plans, commits and pushes until the
    push lands.
    """

    def __init__(self, *, url: str, branch: str, sub_path: str, cache: Path):
        self.url, self.branch, self.sub_path = url, branch, sub_path
        self.git_dir = workdir_for(cache, url, branch)
        self.tracking_ref = f"refs/remotes/origin/{branch}"
        self._fetching: subprocess.Popen | None = None
        self._recalled: tuple[str, dict[str, str], set[str]] | None = None  # loaded while the fetch runs
        self._unsaved: RemoteState | None = None  # read, not yet remembered
        self._lock = _locked(self.git_dir)

    def __enter__(self) -> "Publisher":
        self._lock.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._lock.__exit__(*exc)

    def _git(self, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
        return gitcli.run(*args, git_dir=self.git_dir, **kwargs)

    def _start(self, *args: str, **popen: object) -> subprocess.Popen:
        return gitcli.start(*args, git_dir=self.git_dir, **popen)

    # -- the cache -------------------------------------------------------------------------------

    def _usable(self) -> bool:
        return all((self.git_dir / name).exists() for name in ("HEAD", "config", "objects", "refs"))

    def _create(self) -> None:
        """A fresh bare cache, built aside and renamed into place so a kill never leaves half of one."""
        import shutil

        shutil.rmtree(self.git_dir, ignore_errors=True)  # an unusable cache, or an older layout
        for left_over in self.git_dir.parent.glob(f"{self.git_dir.name}.new-*"):  # by killed runs
            shutil.rmtree(left_over, ignore_errors=True)
        building = self.git_dir.with_name(f"{self.git_dir.name}.new-{os.getpid()}")
        gitcli.run("init", "--quiet", "--bare", str(building))
        gitcli.run("remote", "add", "origin", self.url, git_dir=building)
        building.rename(self.git_dir)

    def _remove_stale_locks(self) -> None:
        for name in ("shallow.lock", "packed-refs.lock", "config.lock", "HEAD.lock",
                     f"{self.tracking_ref}.lock", "refs/airflow-gitops/publish.lock"):
            (self.git_dir / name).unlink(missing_ok=True)

    def _read(self) -> RemoteState:
        """The fetched head, its files under the sub-path and its manifest: from what the cache
        remembers of an earlier head plus `git diff-tree` when it can, or read in full. The new
        state is remembered later, while the push is on its way (`_save_memory`)."""
        remembered, self._recalled = self._recalled or self._remembered(), None
        state = self._read_changes(*remembered) if remembered else None
        if state is None:
            state = self._read_in_full()
        self._unsaved = state
        return state

    def _read_in_full(self) -> RemoteState:
        prefix = f"{self.sub_path}/" if self.sub_path else ""
        listing = self._start("--literal-pathspecs", "ls-tree", "-r", "-z", "--full-tree", self.tracking_ref, "--",
                              self.sub_path or ".", stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        objects = self._git("cat-file", "--batch", check=False, text=False,
                            input=f"{self.tracking_ref}^{{commit}}\n{self.tracking_ref}:{prefix}{mirror.MANIFEST}\n".encode())
        tree = listing.communicate()[0]
        header, _, rest = objects.stdout.partition(b"\n")
        if objects.returncode != 0 or not header:
            raise _DamagedCache(objects.stderr.decode(errors="replace"))
        if header.endswith(b" missing"):
            return RemoteState(None, {}, set())
        head, _, size = header.decode().split(" ")
        # The commit's text is skipped; what follows it is the manifest (`<id> blob <size>`) or `missing`.
        header, _, rest = rest[int(size) + 1:].partition(b"\n")
        manifest = None if header.endswith(b" missing") else rest[: int(header.split(b" ")[2])]
        if listing.returncode != 0:
            raise _DamagedCache(f"cannot list {self.tracking_ref}")
        return RemoteState(head, _parse_tree(tree, prefix), self._parse_manifest(manifest))

    def _read_changes(self, old_head: str, tracked: dict[str, str], managed: set[str]) -> RemoteState | None:
        """The remembered state of `old_head` moved to the fetched head with `git diff-tree`, which only
        reads what changed (None: read in full)."""
        prefix = f"{self.sub_path}/" if self.sub_path else ""
        resolving = self._start("rev-parse", "--verify", "--quiet", f"{self.tracking_ref}^{{commit}}",
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        changes = self._git("--literal-pathspecs", "diff-tree", "-r", "-z", "--no-renames", old_head, self.tracking_ref, "--",
                            self.sub_path or ".", check=False, text=False)
        head = resolving.communicate()[0].decode().strip()
        if not head:
            return RemoteState(None, {}, set())
        if changes.returncode != 0:  # the old head is gone from the cache, or the branch was deleted
            return None
        tracked = dict(tracked)
        manifest_changed = False
        fields = os.fsdecode(changes.stdout).split("\0")
        for meta, path in zip(fields[0::2], fields[1::2]):  # ":<old mode> <new mode> <old id> <new id> <status>", path
            _, new_mode, _, new_id, status = meta.lstrip(":").split(" ")
            relative = path[len(prefix):]
            manifest_changed = manifest_changed or relative == mirror.MANIFEST
            if status == "D":
                tracked.pop(relative, None)
            else:
                tracked[relative] = _tracked_id(new_mode, "commit" if new_mode == "160000" else "blob", new_id)
        if manifest_changed:
            text = self._git("cat-file", "-p", f"{head}:{prefix}{mirror.MANIFEST}", check=False, text=False)
            managed = self._parse_manifest(text.stdout if text.returncode == 0 else None)
        return RemoteState(head, tracked, managed)

    def _parse_manifest(self, text: bytes | None) -> set[str]:
        prefix = f"{self.sub_path}/" if self.sub_path else ""
        return mirror.parse_manifest(text, f"{self.url} ({self.branch}) {prefix}{mirror.MANIFEST}")

    # What the cache knows of the sub-path at a head, so that the next run reads only what changed.
    @property
    def _memory(self) -> Path:
        return self.git_dir / f"sync-listing-{hashlib.sha256(self.sub_path.encode()).hexdigest()[:12]}.marshal"

    def _remembered(self) -> tuple[str, dict[str, str], set[str]] | None:
        try:
            head, tracked, managed = marshal.loads(self._memory.read_bytes())
            return head, tracked, set(managed)
        except (OSError, ValueError, EOFError, TypeError):
            return None

    def _save_memory(self) -> None:
        state, self._unsaved = self._unsaved, None
        if state is None:
            return
        if state.head is None:
            self._memory.unlink(missing_ok=True)
            return
        building = self._memory.with_suffix(f".{os.getpid()}.tmp")
        building.write_bytes(marshal.dumps((state.head, state.tracked, sorted(state.managed))))
        building.replace(self._memory)

    def begin(self) -> None:
        """Prepare the cache and start fetching, from the calling thread (a thread of its own would
        wait for the interpreter lock while the DAGs are checked); `state()` finishes the fetch."""
        if not self._usable():
            self._create()
        self._remove_stale_locks()
        self._fetching = self._start_fetch()

    def state(self) -> RemoteState:
        """The remote branch as it is now (only its last commit is downloaded)."""
        if self._fetching is None:
            self.begin()
        fetching, self._fetching = self._fetching, None
        self._recalled = self._remembered()  # while the fetch runs
        return self._finish_or_rebuild(fetching)

    def fetch(self) -> RemoteState:
        return self._finish_or_rebuild(self._start_fetch())

    def _finish_or_rebuild(self, fetching: subprocess.Popen) -> RemoteState:
        try:
            return self._finish_fetch(fetching)
        except _DamagedCache:
            self._create()  # damaged beyond stale locks: start again from the remote
            return self._finish_fetch(self._start_fetch())

    def _start_fetch(self) -> subprocess.Popen:
        # Git's automatic maintenance is checked here rather than by every fetch (its own spawn
        # costs ~7 ms of the edit loop's hot path); forced updates need no report, we never merge.
        if self._due_for_maintenance():
            self._git("maintenance", "run", "--auto", "--quiet", check=False)  # gc detaches, as after any fetch
        return self._start("-c", "fetch.showForcedUpdates=false", "fetch", "--quiet", "--no-tags", "--depth=1",
                           "--no-auto-maintenance", "origin", f"+refs/heads/{self.branch}:{self.tracking_ref}",
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def _finish_fetch(self, fetching: subprocess.Popen) -> RemoteState:
        error = fetching.communicate()[1]
        if fetching.returncode != 0:
            if "couldn't find remote ref" not in error.lower():
                raise PublishError(f"cannot fetch {self.branch} from {self.url}: {error.strip()}")
            self._git("update-ref", "-d", self.tracking_ref)  # the branch is gone (or never existed)
        return self._read()

    def _due_for_maintenance(self) -> bool:
        """`git gc --auto`'s default thresholds, counted without starting git: more than 50 packs, or
        about 6,700 loose objects (estimated, as Git does, from the objects/17 directory). Git then
        applies the user's own gc settings itself."""
        objects = self.git_dir / "objects"
        try:
            packs = sum(1 for name in os.listdir(objects / "pack") if name.endswith(".pack"))
        except OSError:
            packs = 0
        try:
            loose = len(os.listdir(objects / "17"))
        except OSError:
            loose = 0
        return packs > 50 or loose > (6700 + 255) // 256

    # -- one publication -------------------------------------------------------------------------

    def _commit(self, state: RemoteState, plan_: mirror.Plan, source_root: Path, files: SourceFiles,
                message: str, author: Identity, committer: Identity) -> str:
        """One commit on top of `state.head`: the plan's files streamed to `git fast-import`, which
        loads only the directories it touches (one process, where an index would need five)."""
        prefix = f"{self.sub_path}/" if self.sub_path else ""
        self._check_parents(state.head)
        marks = self.git_dir / "sync-marks"
        marks.unlink(missing_ok=True)
        importer = self._start("-c", "fastimport.unpackLimit=0", "fast-import", "--quiet", "--force", "--date-format=now",
                               "--done", f"--export-marks={marks}",
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        stream = importer.stdin
        assert stream is not None
        body = message.encode()
        try:
            stream.write(b"".join([
                b"reset refs/airflow-gitops/publish\ncommit refs/airflow-gitops/publish\nmark :1\n",
                f"author {author.name} <{author.email}> now\ncommitter {committer.name} <{committer.email}> now\n".encode(),
                b"data %d\n%s\n" % (len(body), body),
                f"from {state.head}\n".encode() if state.head else b"",
            ]))
            for relative in plan_.removed:
                stream.write(b"D %s\n" % _quoted(prefix + relative))
            copies = plan_.added + plan_.changed
            with Progress("committing", len(copies)) as progress:
                for relative in copies:
                    data = self._checked_content(source_root, relative, files[relative])
                    stream.write(b"M 100644 inline %s\ndata %d\n%s\n" % (_quoted(prefix + relative), len(data), data))
                    progress.advance()
            manifest = mirror.manifest_text(files).encode()
            stream.write(b"M 100644 inline %s\ndata %d\n%s\n\ndone\n" % (_quoted(prefix + mirror.MANIFEST), len(manifest), manifest))
            stream.close()
        except BrokenPipeError:
            pass  # fast-import stopped early: its message follows
        except BaseException:
            importer.kill()  # without `done`, nothing it read is kept
            importer.wait()
            raise
        error = importer.stderr.read().decode(errors="replace") if importer.stderr else ""
        if importer.wait() != 0:
            raise PublishError(f"cannot commit the DAGs for {self.url} ({self.branch}): {error.strip()}")
        return marks.read_text().split()[1]

    @staticmethod
    def _checked_content(source_root: Path, relative: str, digest: str) -> bytes:
        """The file's bytes, refused unless they are the ones the checks passed."""
        try:
            data = (source_root / relative).read_bytes()
        except FileNotFoundError:
            data = None
        if data is None or blob_id(data) != digest:
            state = "removed" if data is None else "changed"
            raise PublishError(f"{relative}: {state} after it was checked; nothing was pushed: run sync-dags again")
        return data

    def _check_parents(self, head: str | None) -> None:
        """A nested sub-path (team/dags) must not sit under a file of somebody else's (team): Git
        cannot hold both, and the commit would silently replace the file."""
        parents = mirror.parent_dirs(self.sub_path)
        if not (head and parents):
            return
        listing = self._git("--literal-pathspecs", "ls-tree", "-z", "--full-tree", head, "--", *parents, text=False)
        for path, entry in _parse_tree(listing.stdout, "").items():
            if not entry.startswith("040000:tree:"):
                raise mirror.MirrorError(f"{self.url} ({self.branch}): {path} is a file, so the sub-path "
                                         f"{self.sub_path} cannot be created under it; choose another sub-path")

    def _push(self, commit: str, head: str | None) -> str | None:
        """Push `commit` if the remote branch still is `head`: None when it landed, Git's refusal
        when the remote moved meanwhile (raises on any other failure)."""
        pushing = self._start("push", "--porcelain", f"--force-with-lease=refs/heads/{self.branch}:{head or ''}",
                              "origin", f"{commit}:refs/heads/{self.branch}",
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._save_memory()  # meanwhile
        out, error = pushing.communicate()
        if pushing.returncode == 0:
            return None
        rejected = [line.split("\t")[-1].strip() for line in out.splitlines() if line.startswith("!")][:1]
        reason = [" ".join(line.split()) for line in error.splitlines() if "error:" in line][:1]
        refusal = "; ".join(rejected + reason).rstrip(".") or error.strip()
        if any(marker in f"{out}\n{error}" for marker in _MOVED):
            return refusal
        raise PublishError(f"push to {self.url} ({self.branch}) failed: {error.strip() or out.strip()}")

    def publish(
        self,
        *,
        source_root: Path,
        files: SourceFiles,
        message: Callable[[mirror.Plan], str],
        author: Identity,
        committer: Identity,
        state: RemoteState | None = None,
        max_attempts: int = 8,
        dry_run: bool = False,
    ) -> Outcome:
        """Mirror `files` into the sub-path, commit and push until the push lands or attempts run out."""
        state = state or self.state()
        for attempt in range(1, max_attempts + 1):
            plan_ = mirror.plan(files, state.tracked, state.managed)
            if dry_run or plan_.empty:
                self._save_memory()
                return Outcome(None, plan_, attempt - 1)
            commit = self._commit(state, plan_, source_root, files, message(plan_), author, committer)
            refusal = self._push(commit, state.head)
            if refusal is None:
                return Outcome(commit, plan_, attempt)
            # Somebody else pushed since our fetch: start again from their commit, with backoff and jitter.
            import random

            time.sleep(min(4.0, 0.1 * 2 ** (attempt - 1)) * (0.5 + random.random()))
            state = self.fetch()
        hint = (" A lock file on the server blocks the branch (a crashed push leaves one): remove it there."
                if "File exists" in refusal else "")
        raise PublishError(f"gave up after {max_attempts} attempts to push to {self.url} ({self.branch}); "
                           f"the last refusal: {refusal}.{hint}")
