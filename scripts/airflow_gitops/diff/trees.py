"""compiled/ at two states, read with Git's plumbing: only the files whose blob ids differ.

A revision pair is one `git diff-tree -r` (blob ids of both sides, equal files never listed) and
one `git cat-file --batch` for every changed blob; the working tree against a revision is one
`git diff` (Git's own stat cache decides what changed) plus untracked files, the files read from
disk. No process per file.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .. import gitcli
from .errors import UnknownRevisionError, UnknownTargetError

COMPILED = "compiled"
WORKING_TREE = None  # head=None: the working tree
ZERO = "0" * 40


@dataclass(frozen=True)
class ChangedFile:
    """One file of compiled/<env>/ whose bytes differ: old or new is None when it is absent."""

    env: str
    path: str  # relative to compiled/<env>/
    old: bytes | None
    new: bytes | None


@dataclass
class TreePair:
    """What differs under compiled/ between base and head, per environment."""

    base: str
    head: str  # a commit id, or "working tree"
    base_envs: set[str] = field(default_factory=set)
    head_envs: set[str] = field(default_factory=set)
    files: dict[str, list[ChangedFile]] = field(default_factory=dict)

    @property
    def environments(self) -> list[str]:
        return sorted(self.base_envs | self.head_envs)


def resolve(root: Path, rev: str, option: str) -> str:
    result = gitcli.run("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", cwd=root, check=False)
    if result.returncode != 0:
        raise UnknownRevisionError(f"{option} {rev}: not a revision of this repository "
                                   "(a branch, tag or commit; fetch it first if it lives on a remote)")
    return result.stdout.strip()


def default_base(root: Path) -> str:
    """The merge base of HEAD with the default branch (origin's HEAD, else main or master)."""
    candidates = []
    head_ref = gitcli.run("symbolic-ref", "--quiet", "refs/remotes/origin/HEAD", cwd=root, check=False)
    if head_ref.returncode == 0:
        candidates.append(head_ref.stdout.strip())
    candidates += ["refs/remotes/origin/main", "refs/heads/main", "refs/remotes/origin/master", "refs/heads/master"]
    for ref in candidates:
        found = gitcli.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=root, check=False)
        if found.returncode == 0:
            base = gitcli.run("merge-base", "HEAD", found.stdout.strip(), cwd=root, check=False)
            if base.returncode == 0:
                return base.stdout.strip()
    raise UnknownRevisionError("no default branch to compare with (neither origin's HEAD, main nor master): pass --base REV")


def _envs_at(root: Path, commit: str) -> set[str]:
    out = gitcli.run("ls-tree", "-z", "--name-only", commit, f"{COMPILED}/", cwd=root).stdout
    return {Path(p).name for p in out.split("\0") if p}


def _envs_on_disk(root: Path, folder: str = COMPILED) -> set[str]:
    compiled = root / folder
    return {p.name for p in compiled.iterdir() if p.is_dir()} if compiled.is_dir() else set()


def _pathspecs(targets: list[str] | None) -> list[str]:
    return [f"{COMPILED}/{t}/" for t in targets] if targets else [f"{COMPILED}/"]


def _split(path: str) -> tuple[str, str]:
    _, env, rest = path.split("/", 2)
    return env, rest


def _read_blobs(root: Path, ids: list[str]) -> dict[str, bytes]:
    """Every blob in one `git cat-file --batch`."""
    wanted = sorted(set(ids) - {ZERO})
    if not wanted:
        return {}
    out = subprocess.run(["git", "cat-file", "--batch"], cwd=root, input="\n".join(wanted).encode() + b"\n",
                         capture_output=True, check=True).stdout
    blobs: dict[str, bytes] = {}
    pos = 0
    while pos < len(out):
        end = out.index(b"\n", pos)
        oid, kind, size = out[pos:end].decode().split(" ")
        start = end + 1
        blobs[oid] = out[start:start + int(size)]
        pos = start + int(size) + 1
    return blobs


def _check_targets(targets: list[str] | None, envs: set[str]) -> None:
    unknown = [t for t in targets or [] if t not in envs]
    if unknown:
        raise UnknownTargetError(f"--target {unknown[0]}: no compiled/{unknown[0]}/ on either side "
                                 f"(environments: {', '.join(sorted(envs)) or 'none'})")


def between_commits(root: Path, base: str, head: str, targets: list[str] | None = None) -> TreePair:
    pair = TreePair(base=base, head=head, base_envs=_envs_at(root, base), head_envs=_envs_at(root, head))
    _check_targets(targets, pair.base_envs | pair.head_envs)
    out = gitcli.run("diff-tree", "-r", "-z", "--no-renames", base, head, "--", *_pathspecs(targets), cwd=root).stdout
    fields = out.split("\0")
    entries = []
    for meta, path in zip(fields[0::2], fields[1::2]):
        if not meta.startswith(":"):
            continue
        _, _, old_id, new_id, _ = meta[1:].split(" ")
        entries.append((path, old_id, new_id))
    blobs = _read_blobs(root, [i for _, old_id, new_id in entries for i in (old_id, new_id)])
    for path, old_id, new_id in entries:
        env, rest = _split(path)
        pair.files.setdefault(env, []).append(ChangedFile(env, rest, blobs.get(old_id), blobs.get(new_id)))
    return pair


def against_working_tree(root: Path, base: str, targets: list[str] | None = None) -> TreePair:
    pair = TreePair(base=base, head="working tree", base_envs=_envs_at(root, base), head_envs=_envs_on_disk(root))
    _check_targets(targets, pair.base_envs | pair.head_envs)
    specs = _pathspecs(targets)
    changed = gitcli.run("diff", "--name-only", "-z", "--no-renames", base, "--", *specs, cwd=root).stdout
    untracked = gitcli.run("ls-files", "-z", "--others", "--exclude-standard", "--", *specs, cwd=root).stdout
    paths = sorted({p for p in (changed + untracked).split("\0") if p})
    if not paths:
        return pair
    listed = gitcli.run("ls-tree", "-r", "-z", base, "--", *paths, cwd=root).stdout
    base_ids = {}
    for line in listed.split("\0"):
        if line:
            meta, path = line.split("\t", 1)
            base_ids[path] = meta.split(" ")[2]
    blobs = _read_blobs(root, list(base_ids.values()))
    for path in paths:
        on_disk = root / path
        new = on_disk.read_bytes() if on_disk.is_file() else None
        old = blobs.get(base_ids[path]) if path in base_ids else None
        if old == new:
            continue
        env, rest = _split(path)
        pair.files.setdefault(env, []).append(ChangedFile(env, rest, old, new))
    return pair


def _files_under(compiled: Path) -> dict[str, Path]:
    return {str(p.relative_to(compiled)): p for p in compiled.rglob("*") if p.is_file()} if compiled.is_dir() else {}


def between_directories(old: Path, new: Path, old_label: str, new_label: str) -> TreePair:
    """Two compiled/ trees on disk (compiled/ and a compile of a proposed inventory), byte for byte."""
    pair = TreePair(base=old_label, head=new_label, base_envs=_envs_on_disk(old.parent, old.name),
                    head_envs=_envs_on_disk(new.parent, new.name))
    old_files, new_files = _files_under(old), _files_under(new)
    for path in sorted(old_files.keys() | new_files.keys()):
        if "/" not in path:
            continue
        before = old_files[path].read_bytes() if path in old_files else None
        after = new_files[path].read_bytes() if path in new_files else None
        if before != after:
            env, rest = path.split("/", 1)
            pair.files.setdefault(env, []).append(ChangedFile(env, rest, before, after))
    return pair


def changed_environments(root: Path, base: str | None = None) -> tuple[list[str], str]:
    """The environments whose compiled/ folder in the working tree differs from `base` (default:
    the merge base with the default branch), with the base's short name; environments gone from
    the working tree are left out (nothing to check)."""
    base_id = resolve(root, base, "--base") if base else default_base(root)
    pair = against_working_tree(root, base_id)
    changed = sorted((set(pair.files) | (pair.head_envs - pair.base_envs)) & pair.head_envs)
    return changed, base or base_id[:12]
