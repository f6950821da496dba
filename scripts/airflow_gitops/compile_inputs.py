"""Which environments a compile must redo: each target's inputs as one digest, remembered with the
state of its compiled folder after the last compile.

The inputs of an environment are everything that can change its output: its target file, every
class it uses (transitively), the components and Jsonnet libraries, the schemas and option lists,
its refs, the `.kapitan` settings, the versions of Kapitan and the libraries it runs on, and this
package's code that drives the compile. The bootstrap reads every target's parameters, so its
inputs are every inventory file. A folder of compiled/ that no longer matches what the last
compile left there (edited by hand, checked out, deleted) is compiled again too. Whatever cannot be
traced (a class name that maps to no file, no record of a previous compile) means a full compile.

The record lives under `.cache/compile-state/`, never in Git: a fresh clone compiles everything.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from .venvs import cache_dir

# Shared by every target: a change here recompiles all of them.
SHARED_DIRS = ("components", "kapitan/lib", "kapitan/schemas")
TOOLS = ("kapitan", "reclass-rs", "gojsonnet", "rapidyaml", "PyYAML", "jsonschema")
# This package's code that decides what lands in compiled/.
DRIVERS = ("kapitan_runner.py", "kapitan_main.py", "kapitan_pool.py", "compiled_tree.py", "compile_inputs.py")
BOOTSTRAP = "bootstrap"


class Untraceable(Exception):
    """An input could not be traced: compile everything."""


def _file_digest(path: Path) -> bytes:
    return hashlib.sha256(path.read_bytes()).digest()


def _tree_digest(root: Path, relative: str) -> bytes:
    digest = hashlib.sha256()
    base = root / relative
    for path in sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else []:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + _file_digest(path))
    return digest.digest()


def _tool_versions() -> bytes:
    versions = []
    for name in TOOLS:
        try:
            versions.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name}=absent")
    here = Path(__file__).parent
    drivers = b"".join(_file_digest(here / name) for name in DRIVERS)
    return f"python={sys.version}\n{';'.join(versions)}".encode() + drivers


@dataclass
class Inventory:
    """The inventory's files, read once: each target's file and the classes each file names."""

    root: Path
    targets: dict[str, Path]  # node name -> its file
    classes_dir: Path
    # The classes each file names, parsed once: 200 targets share a few dozen class files.
    _listed: dict[Path, list[str]] = field(default_factory=dict)
    _class_files: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def read(cls, root: Path) -> Inventory:
        targets_dir = root / "inventory" / "targets"
        targets: dict[str, Path] = {}
        for path in sorted(targets_dir.rglob("*.yml"), key=lambda p: (len(p.parts), str(p))):
            targets.setdefault(path.stem, path)  # reclass names a node by its file's stem
        return cls(root, targets, root / "inventory" / "classes")

    def class_file(self, name: str) -> Path:
        if name not in self._class_files:
            self._class_files[name] = self._find_class_file(name)
        return self._class_files[name]

    def _find_class_file(self, name: str) -> Path:
        if name.startswith(".") or "${" in name:
            raise Untraceable(f"class {name}: relative or interpolated class names are not traced")
        parts = name.split(".")
        for candidate in (self.classes_dir.joinpath(*parts).with_suffix(".yml"),
                          self.classes_dir.joinpath(*parts, "init.yml")):
            if candidate.is_file():
                return candidate
        raise Untraceable(f"class {name}: no file")

    def classes_of(self, path: Path) -> list[str]:
        if path not in self._listed:
            import yaml

            data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
            names = data.get("classes") if isinstance(data, dict) else None
            self._listed[path] = [str(n) for n in names] if isinstance(names, list) else []
        return self._listed[path]

    def files_of(self, target: str) -> list[Path]:
        """The target's file and every class file it uses, transitively."""
        seen: dict[Path, None] = {}
        pending = [self.targets[target]]
        while pending:
            path = pending.pop()
            if path in seen:
                continue
            seen[path] = None
            pending += [self.class_file(name) for name in self.classes_of(path)]
        return sorted(seen)


def input_digests(root: Path) -> dict[str, str]:
    """target -> digest of its inputs. Raises Untraceable when some input cannot be traced."""
    inventory = Inventory.read(root)
    shared = hashlib.sha256(_tool_versions())
    shared.update(_file_digest(root / ".kapitan"))
    for relative in SHARED_DIRS:
        shared.update(_tree_digest(root, relative))
    file_digests: dict[Path, bytes] = {}

    def digest_of(path: Path) -> bytes:
        if path not in file_digests:
            file_digests[path] = _file_digest(path)
        return file_digests[path]

    digests = {}
    for target in inventory.targets:
        if target == BOOTSTRAP:
            continue
        digest = shared.copy()
        for path in inventory.files_of(target):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + digest_of(path))
        digest.update(_tree_digest(root, f"kapitan/refs/targets/{target}"))
        digests[target] = digest.hexdigest()
    if BOOTSTRAP in inventory.targets:
        digest = shared.copy()
        for path in sorted((root / "inventory").rglob("*.yml")):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + digest_of(path))
        digests[BOOTSTRAP] = digest.hexdigest()
    return digests


def output_signature(folder: Path) -> str:
    """What a compiled folder holds now, by each file's path, size, mtime and inode (as Git's index
    tells a changed file) and each folder's path: compiled_tree keeps all of them for a file whose
    bytes did not change."""
    digest = hashlib.sha256()
    if not folder.is_dir():
        return ""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in dirnames:  # a folder added by hand (or a link in place of one) counts too
            path = os.path.join(dirpath, name)
            digest.update(f"{os.path.relpath(path, folder)}/\0{os.lstat(path).st_mode}\n".encode())
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            digest.update(f"{os.path.relpath(path, folder)}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode())
    return digest.hexdigest()


def _state_path(root: Path) -> Path:
    # Copies of a repository may share one cache (AIRFLOW_GITOPS_CACHE): one record per checkout.
    checkout = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return cache_dir(root) / "compile-state" / f"{checkout}.json"


def load_state(root: Path) -> dict[str, dict[str, str]]:
    try:
        state = json.loads(_state_path(root).read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) and state.get("root") == str(root.resolve()) else {}


def save_state(root: Path, inputs: dict[str, str], compiled_targets: list[str], previous: dict) -> None:
    """Remember the inputs and the output folders of the targets just compiled (others keep theirs)."""
    recorded = {} if not previous else dict(previous.get("targets", {}))
    for target in compiled_targets:
        if target in inputs:
            recorded[target] = {"inputs": inputs[target], "output": output_signature(root / "compiled" / target)}
    recorded = {t: v for t, v in recorded.items() if t in inputs}
    path = _state_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"root": str(root.resolve()), "targets": recorded}, sort_keys=True))
    tmp.replace(path)


def stale_targets(root: Path, inputs: dict[str, str], state: dict) -> list[str] | None:
    """The targets to compile again; None when every target must be (no usable record)."""
    recorded = state.get("targets") if state else None
    if not recorded:
        return None
    stale = []
    for target, digest in inputs.items():
        entry = recorded.get(target)
        if (not entry or entry.get("inputs") != digest
                or entry.get("output") != output_signature(root / "compiled" / target)):
            stale.append(target)
    return stale
