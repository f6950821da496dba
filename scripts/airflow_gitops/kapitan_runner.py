"""Running the real `kapitan` CLI (from this virtualenv) and turning its failures into clear errors."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import CompileError

# Kapitan prints a traceback per failed target, then one "Error compiling <target>: <message>"
# line followed by the Jsonnet stack; that line is what the user needs.
_ERROR_LINE = re.compile(r"^Error compiling (?P<target>\S+): (?P<message>.+)$", re.MULTILINE)
_RECLASS_ERROR = re.compile(r"^(Reclass-rs error: .+|Inventory error: .+)$", re.MULTILINE)
_RECLASS_NODE = re.compile(r"^Reclass-rs error: Error while rendering inventory: Error rendering node (?P<node>[^:\s]+): (?P<message>.+)$")


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


def run_kapitan(args: list[str], root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([kapitan_executable(), *args], cwd=root, capture_output=True, text=True)


def _clean(message: str) -> str:
    return message.removeprefix("RUNTIME ERROR: ").removeprefix("invalid inventory: ").strip()


def _reclass_line(line: str) -> str:
    """reclass-rs names the node; the user edits inventory/targets/<node>.yml."""
    m = _RECLASS_NODE.match(line)
    return f"inventory/targets/{m['node']}.yml: {m['message']}" if m else line


def explain_failure(output: str) -> str:
    """The user-facing part of kapitan's output: one line per failed target."""
    lines = [f"{m['target']}: {_clean(m['message'])}" if not _clean(m["message"]).startswith("inventory/")
             else _clean(m["message"]) for m in _ERROR_LINE.finditer(output)]
    lines += [_reclass_line(m.group(1)) for m in _RECLASS_ERROR.finditer(output)]
    if not lines:
        tail = [line for line in output.strip().splitlines() if line.strip()][-5:]
        lines = tail or ["kapitan failed without a message"]
    return "\n".join(dict.fromkeys(lines))


def compile_targets(root: Path, output_path: Path | None = None, targets: list[str] | None = None) -> str:
    """Compile (all or some) targets; raises CompileError naming the file and key on failure."""
    args = ["compile"]
    if output_path is not None:
        args += ["--output-path", str(output_path)]
    if targets:
        args += ["--targets", *targets]
    result = run_kapitan(args, root)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise CompileError(explain_failure(output))
    return output
