"""Bringing compiled/ up to date from a fresh compile, writing only the files that changed.

`kapitan compile` deletes compiled/ and copies every file back from its temporary directory. On ext4
without a journal (how many cloud and CI machines mount their disks, this one included) the kernel
does not reuse an inode for a minute after it was freed, and each new file first steps over every
such inode: after a compile has deleted 2,000 files, each of the next 2,000 costs about 0.4 ms, a
quarter of a 50-environment compile. Here kapitan writes into a scratch directory, in memory where
the machine has one, and compiled/ is then brought to the same bytes and modes: unchanged files
keep their inode and timestamp, and only what changed is replaced or removed.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import CompileError

# A memory-backed directory is used only with this much room left (a 50-environment compile
# writes about 12 MB there: kapitan's temporary copy and its output).
_MIN_FREE_BYTES = 256 * 1024 * 1024
SCRATCH_ENV = "AIRFLOW_GITOPS_SCRATCH_DIR"
# Kapitan's target names: a.b compiles into compiled/a/b.
_TARGET_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


def scratch_root() -> Path:
    """Where a compile is written before compiled/ is updated: $AIRFLOW_GITOPS_SCRATCH_DIR, else
    /dev/shm (memory) when it exists with room to spare, else the system's temporary directory."""
    chosen = os.environ.get(SCRATCH_ENV)
    if chosen:
        if not Path(chosen).is_dir():
            raise CompileError(f"{SCRATCH_ENV}={chosen}: not a directory (unset it to use /dev/shm or the system's temporary directory)")
        return Path(chosen)
    shm = Path("/dev/shm")
    try:
        stats = os.statvfs(shm)
        if os.access(shm, os.W_OK | os.X_OK) and stats.f_bavail * stats.f_frsize >= _MIN_FREE_BYTES:
            return shm
    except OSError:
        pass
    return Path(tempfile.gettempdir())


@contextmanager
def scratch_directory() -> Iterator[Path]:
    """A private, empty directory under scratch_root(), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="airflow-gitops-compile-", dir=scratch_root(), ignore_cleanup_errors=True) as tmp:
        yield Path(tmp)


def target_folder(name: str) -> Path:
    """The folder of a target under compiled/, as kapitan names it."""
    if not _TARGET_NAME.fullmatch(name):
        raise CompileError(f"--target {name}: not an environment name (letters, digits, '-', '_', and '.' between them)")
    return Path(*name.split("."))


def _remove(path: Path, entry: os.DirEntry[str]) -> int:
    """Removes a file or a whole folder; returns how many files went."""
    if entry.is_dir(follow_symlinks=False):
        files = sum(1 for p in path.rglob("*") if not p.is_dir())
        shutil.rmtree(path)
        return files
    path.unlink()
    return 1


def _unchanged(old: os.DirEntry[str], new: os.DirEntry[str], data: bytes) -> bool:
    old_stat, new_stat = old.stat(follow_symlinks=False), new.stat()
    return (old_stat.st_size == len(data) and stat.S_IMODE(old_stat.st_mode) == stat.S_IMODE(new_stat.st_mode)
            and Path(old.path).read_bytes() == data)


def _replace(target: Path, data: bytes, mode: int) -> None:
    """A new file renamed over the old one, as kapitan's copy would leave it: its own inode
    (hard links to the old one keep the old bytes) and the fresh file's mode."""
    temporary = target.with_name(f".{target.name}.airflow-gitops-{os.getpid()}")
    try:
        with open(temporary, "wb") as out:
            out.write(data)
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def mirror(fresh: Path, dest: Path) -> int:
    """Make the tree at `dest` identical to the tree at `fresh` (what kapitan's delete and copy
    would leave); returns how many files were written or removed."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        dest.unlink()
    dest.mkdir(parents=True, exist_ok=True)
    produced = {entry.name: entry for entry in os.scandir(fresh)}
    existing = {entry.name: entry for entry in os.scandir(dest)}
    # Removals first: on a case-insensitive filesystem a stale foo.yaml is the new Foo.yaml's slot.
    changes = sum(_remove(dest / name, entry) for name, entry in existing.items() if name not in produced)
    for name, entry in produced.items():
        target = dest / name
        old = existing.get(name)
        if entry.is_dir(follow_symlinks=False):
            changes += mirror(Path(entry.path), target)
            continue
        data = Path(entry.path).read_bytes()
        if old is not None and not old.is_file(follow_symlinks=False):
            changes += _remove(target, old)
            old = None
        if old is None or not _unchanged(old, entry, data):
            _replace(target, data, stat.S_IMODE(entry.stat().st_mode))
            changes += 1
    return changes


def update(fresh: Path, compiled: Path, targets: list[str] | None = None) -> int:
    """Bring `compiled` up to date with a fresh compile: all of it (targets no longer in the
    inventory lose their folder, as with kapitan), or only the named targets' folders. Returns
    how many files were written or removed."""
    if compiled.is_symlink():
        # kapitan refuses too (it cannot delete a link as a tree); following it would write elsewhere.
        raise CompileError(f"{compiled}: is a symbolic link; make compiled/ a directory of this repository")
    if not targets:
        return mirror(fresh, compiled)
    folders = [target_folder(name) for name in targets]
    missing = [name for name, folder in zip(targets, folders) if not (fresh / folder).is_dir()]
    if missing:
        raise CompileError(f"--target {missing[0]}: no such environment (inventory/targets/{missing[0]}.yml does not exist)")
    return sum(mirror(fresh / folder, compiled / folder) for folder in folders)
