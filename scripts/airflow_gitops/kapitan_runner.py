"""Running the real `kapitan` CLI (from this virtualenv) and turning its failures into clear errors."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from . import compiled_tree
from .errors import CompileError

# Kapitan prints a traceback per failed target, then one "Error compiling <target>: <message>"
# line followed by the Jsonnet stack; that line is what the user needs.
_ERROR_LINE = re.compile(r"^Error compiling (?P<target>\S+): (?P<message>.+)$", re.MULTILINE)
_RECLASS_ERROR = re.compile(r"^(Reclass-rs error: .+|Inventory error: .+)$", re.MULTILINE)
_COMPILING = re.compile(r"Compiling (?P<selected>\d+)/(?P<discovered>\d+) targets")
_RECLASS_NODE = re.compile(r"^Reclass-rs error: Error while rendering inventory: Error rendering node (?P<node>[^:\s]+): (?P<message>.+)$")
_MISSING_CLASS = re.compile(r"^Class (?P<name>\S+) not found$")


# What a compile reads: a copy of these compiles exactly like the repository.
COMPILE_INPUTS = (".kapitan", "inventory", "components", "kapitan")


def copy_compile_inputs(root: Path, dest: Path) -> None:
    for name in COMPILE_INPUTS:
        src = root / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / name)


def kapitan_executable() -> str:
    """The kapitan installed beside this Python (the pinned one), else the one on PATH."""
    candidate = Path(sys.executable).with_name("kapitan")
    return str(candidate) if candidate.exists() else "kapitan"


# Settings of the runtimes inside kapitan, each kept when the user has set it:
# - RUST_LIB_BACKTRACE=0: where RUST_BACKTRACE=1 is set (many developer and CI machines set it),
#   reclass-rs captures a backtrace for every lookup it tries and drops; rendering the inventory
#   of 51 targets took 0.63 s instead of 0.08 s. Panics still print theirs; messages are the same.
# - GOGC=800: go-jsonnet allocates tens of MB of short-lived values per environment, and Go's
#   default (collect whenever the heap doubled) spent about a fifth of each evaluation in the
#   collector; 400 saved ~0.6 s of a 50-environment compile for ~30 MB more per worker, 800 another
#   6% (3.43 s -> 3.21 s, four runs each) for ~50 MB more (a worker peaks at ~210 MB).
RUNTIME_SETTINGS = {"RUST_LIB_BACKTRACE": "0", "GOGC": "800"}


def kapitan_environment(tmpdir: Path | None = None) -> dict[str, str]:
    """This process's environment with RUNTIME_SETTINGS added (and kapitan's temporary directory
    under `tmpdir`, when given)."""
    env = {**RUNTIME_SETTINGS, **os.environ}
    return env if tmpdir is None else {**env, "TMPDIR": str(tmpdir)}


def kapitan_command() -> list[str]:
    """Kapitan's command line as this package runs it: kapitan.cli from this virtualenv, through
    kapitan_main (which defers two imports a compile never uses, half of Kapitan's start-up)."""
    return [sys.executable, "-m", "airflow_gitops.kapitan_main"]


def run_kapitan(args: list[str], root: Path, tmpdir: Path | None = None,
                timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Runs kapitan in a process group of its own: interrupted, or still running after `timeout`
    seconds (subprocess.TimeoutExpired), this process stops kapitan's compile workers too, before
    their scratch directory is removed under them."""
    command = [*kapitan_command(), *args]
    with subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=kapitan_environment(tmpdir), start_new_session=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except BaseException:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _clean(message: str) -> str:
    return message.removeprefix("RUNTIME ERROR: ").removeprefix("invalid inventory: ").strip()


def _reclass_line(line: str, root: Path | None) -> str:
    """reclass-rs names the node; the user edits inventory/targets/<node>.yml. A class it cannot
    find gets where it is listed and what was probably meant (with `root`, the inventory's)."""
    m = _RECLASS_NODE.match(line)
    if not m:
        return line
    if root is None:
        return f"inventory/targets/{m['node']}.yml: {m['message']}"
    from . import inventory

    missing = _MISSING_CLASS.match(m["message"])
    hint = inventory.missing_class_hint(root, m["node"], missing["name"]) if missing else ""
    return f"{inventory.target_file(root, m['node'])}: {m['message']}{hint}"


def explain_failure(output: str, root: Path | None = None) -> str:
    """The user-facing part of kapitan's output: one line per failed target (`root`: the repository
    whose inventory kapitan read, for suggestions)."""
    lines = [f"{m['target']}: {_clean(m['message'])}" if not _clean(m["message"]).startswith("inventory/")
             else _clean(m["message"]) for m in _ERROR_LINE.finditer(output)]
    lines += [_reclass_line(m.group(1), root) for m in _RECLASS_ERROR.finditer(output)]
    if not lines:
        tail = [line for line in output.strip().splitlines() if line.strip()][-5:]
        lines = tail or ["kapitan failed without a message"]
    return "\n".join(dict.fromkeys(lines))


class FreshCompile(NamedTuple):
    tree: Path  # the compiled/ tree kapitan wrote
    every_target: bool  # kapitan compiled every target of the inventory (a full compile)


def kapitan_compile(root: Path, output_path: Path, targets: list[str] | None, tmpdir: Path) -> bool:
    """Whether kapitan compiled every target: naming them all is a full compile for kapitan."""
    # --output-path moves compiled/ only: refs are still written to kapitan/refs of `root`. (It
    # would move the fetched `dependencies:` of an input too; no component uses them.)
    args = ["compile", "--output-path", str(output_path)]
    if targets:
        args += ["--targets", *targets]
    refs_before = _ref_files(root)
    result = run_kapitan(args, root, tmpdir)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise CompileError(explain_failure(output, root))
    if _ref_files(root) != refs_before:
        # A new environment's refs were written by this compile, after its pods' secret checksums
        # were computed without them: compile once more, so that the output is what every later
        # compile gives (a plain `kapitan compile` needs running twice for a new environment).
        result = run_kapitan(args, root, tmpdir)
        output = result.stdout + result.stderr
        if result.returncode != 0:
            raise CompileError(explain_failure(output, root))
    counts = _COMPILING.search(output)
    return counts is not None and counts["selected"] == counts["discovered"]


def _ref_files(root: Path) -> set[str]:
    refs = root / "kapitan" / "refs"
    return {str(p.relative_to(refs)) for p in refs.rglob("*") if p.is_file()} if refs.is_dir() else set()


@contextmanager
def fresh_compile(root: Path, targets: list[str] | None = None) -> Iterator[FreshCompile]:
    """Compile (all or some) targets into a scratch directory, removed afterwards; raises
    CompileError naming the file and key on failure."""
    with compiled_tree.scratch_directory() as scratch:
        every_target = kapitan_compile(root, scratch, targets, tmpdir=scratch)
        yield FreshCompile(scratch / "compiled", every_target)


class CompileSummary(NamedTuple):
    changes: int  # files written or removed in compiled/
    compiled: list[str] | None  # the targets compiled; None: every one


def compile_targets(root: Path, targets: list[str] | None = None, every: bool = False) -> CompileSummary:
    """`kapitan compile`, with compiled/ updated file by file (compiled_tree explains why): what a
    plain `kapitan compile` leaves, and a failed compile changes nothing. Without `targets`, only
    the environments whose inputs changed since the last compile, or whose folder no longer holds
    what it left (compile_inputs explains how that is traced), are compiled: the bytes are those
    of a full compile. `every`: compile them all, whatever the record says."""
    from . import compile_inputs

    for name in targets or []:
        compiled_tree.target_folder(name)  # a bad name is refused before anything runs
    state = compile_inputs.load_state(root)
    if not targets and not every:
        try:
            stale = compile_inputs.stale_targets(root, compile_inputs.input_digests(root), state)
        except compile_inputs.Untraceable:
            stale = None
        gone = _folders_of_removed_targets(root)
        if stale is not None and not gone and not stale:
            return CompileSummary(0, [])
        if stale is not None and not gone:
            targets = stale
    with fresh_compile(root, targets) as fresh:
        # A full compile also removes the folders of targets no longer in the inventory.
        full = fresh.every_target
        changes = compiled_tree.update(fresh.tree, root / "compiled", None if full else targets)
    try:  # after the compile: a new environment's refs are among its inputs
        inputs = compile_inputs.input_digests(root)
    except compile_inputs.Untraceable:
        return CompileSummary(changes, None if full else targets)
    compile_inputs.save_state(root, inputs, list(inputs) if full else list(targets or []), {} if full else state)
    return CompileSummary(changes, None if full else targets)


def _folders_of_removed_targets(root: Path) -> list[str]:
    """Top-level folders of compiled/ that no target compiles into any more."""
    compiled = root / "compiled"
    if not compiled.is_dir():
        return []
    from . import compile_inputs

    expected = {compiled_tree.target_folder(t).parts[0] for t in compile_inputs.Inventory.read(root).targets}
    return sorted(p.name for p in compiled.iterdir() if p.name not in expected)
