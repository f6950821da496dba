"""A proposed inventory, compiled and validated beside the repository before anything is written.

The compile inputs (and dags/, which validate reads) are copied into a scratch directory, the
proposed target files written there, and the whole inventory compiled: the result is exactly what
`make compile` would give after the change, bootstrap included. validate runs on that copy (with
the repository's caches), `diff` compares it with compiled/, and only `apply` touches the
repository: the target files, then compiled/ file by file, then the refs.
"""

from __future__ import annotations

import difflib
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .. import compile_inputs, compiled_tree
from ..errors import CompileError
from ..kapitan_runner import copy_compile_inputs, kapitan_compile
from ..venvs import cache_dir
from .errors import LifecycleError

REFS = Path("kapitan") / "refs"
VALIDATE_INPUTS = (".checkov.yaml",)


@dataclass
class Change:
    """What a command wants the repository's inventory to become."""

    writes: dict[str, str] = field(default_factory=dict)  # path under the root -> its new text
    removals: list[str] = field(default_factory=list)  # files or directories under the root
    # What validate checks in the result: the environments the change adds or alters (and the
    # bootstrap, which lists every environment).
    environments: list[str] = field(default_factory=list)
    bootstrap: bool = False

    def file_changes(self, root: Path) -> list[str]:
        """The change as a reviewer reads it: unified diffs of the target files, removals by path."""
        lines: list[str] = []
        for path, text in sorted(self.writes.items()):
            before = (root / path).read_text() if (root / path).is_file() else ""
            lines += difflib.unified_diff(before.splitlines(keepends=True), text.splitlines(keepends=True),
                                          fromfile=f"a/{path}" if before else "/dev/null", tofile=f"b/{path}")
        for path in sorted(self.removals):
            if (root / path).exists():
                lines.append(f"removed {path}{'/' if (root / path).is_dir() else ''}\n")
        return lines


@dataclass(frozen=True)
class Result:
    """The proposed repository, compiled: scratch/compiled is what compiled/ becomes."""

    scratch: Path

    @property
    def compiled(self) -> Path:
        return self.scratch / "compiled"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def compiled_result(root: Path, change: Change) -> Iterator[Result]:
    """Compile the inventory `change` proposes, in a scratch copy removed afterwards. A failed
    compile raises LifecycleError with kapitan's reason; the repository is untouched either way."""
    print("compiling the changed inventory beside the repository, then validating the result...", file=sys.stderr, flush=True)
    with compiled_tree.scratch_directory() as scratch:
        work = scratch / "repository"
        work.mkdir()
        copy_compile_inputs(root, work)
        # What validate reads besides the compile's inputs: the DAGs and the security policy's settings.
        if (root / "dags").is_dir():
            shutil.copytree(root / "dags", work / "dags")
        for name in VALIDATE_INPUTS:
            if (root / name).is_file():
                shutil.copy2(root / name, work / name)
        for path in change.removals:
            _remove(work / path)
        for path, text in change.writes.items():
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            (work / path).write_text(text)
        tmp = scratch / "tmp"
        tmp.mkdir()
        try:
            kapitan_compile(work, work, None, tmpdir=tmp)  # writes work/compiled
        except CompileError as error:
            raise LifecycleError(f"the changed inventory does not compile; nothing was written:\n{error}") from error
        yield Result(work)


@contextmanager
def _caches_of(root: Path) -> Iterator[None]:
    """Checks on the scratch copy use the repository's virtualenvs and caches, not fresh ones."""
    saved = os.environ.get("AIRFLOW_GITOPS_CACHE")
    os.environ["AIRFLOW_GITOPS_CACHE"] = str(cache_dir(root))
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("AIRFLOW_GITOPS_CACHE", None)
        else:
            os.environ["AIRFLOW_GITOPS_CACHE"] = saved


def validate_result(root: Path, result: Result, change: Change, progress=None) -> None:
    """Every check but up-to-date (the result was just compiled) on what the change adds or alters;
    LifecycleError with the failures when any check fails."""
    from ..validate import report
    from ..validate.names import CHECK_NAMES
    from ..validate.runner import validate

    if not change.environments and not change.bootstrap:
        return
    with _caches_of(root):
        outcome = validate(result.scratch, environments=change.environments, include_bootstrap=change.bootstrap,
                           checks=[c for c in CHECK_NAMES if c != "up-to-date"], progress=progress)
    if not outcome.ok:
        raise LifecycleError("the result compiles but does not pass validate; nothing was written:\n"
                             + report.as_table(outcome))


def diff_result(root: Path, result: Result):
    """`airflow-gitops diff` of compiled/ now against compiled/ after the change."""
    from ..diff.compare import compare_pair
    from ..diff.trees import between_directories

    return compare_pair(between_directories(root / "compiled", result.compiled, "compiled/ now", "after the change"))


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _new_refs(root: Path, result: Result) -> list[Path]:
    """Refs the compile generated for the change (a new environment's secrets), relative to the root."""
    generated = result.scratch / REFS
    if not generated.is_dir():
        return []
    return sorted(p.relative_to(result.scratch) for p in generated.rglob("*")
                  if p.is_file() and not (root / p.relative_to(result.scratch)).exists())


def apply(root: Path, change: Change, result: Result) -> list[str]:
    """Write the change and its compiled result into the repository; the paths written or removed."""
    touched: list[str] = []
    for path, text in sorted(change.writes.items()):
        _write(root / path, text)
        touched.append(path)
    for ref in _new_refs(root, result):
        (root / ref).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(result.scratch / ref, root / ref)
        touched.append(str(ref))
    for path in sorted(change.removals):
        if (root / path).exists():
            _remove(root / path)
            touched.append(path)
    compiled_tree.update(result.compiled, root / "compiled", None)
    touched.append("compiled/")
    # compiled/ is now a full compile of the repository's inputs: the next `make compile` has nothing to do.
    try:
        inputs = compile_inputs.input_digests(root)
        compile_inputs.save_state(root, inputs, list(inputs), {})
    except compile_inputs.Untraceable:
        pass
    return touched
