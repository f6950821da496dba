"""`make bench`: times the edit-compile loop in a temporary copy of the repository.

Figures: a full compile of the repository plus N generated environments (first compile, which
also generates their refs, and a steady-state recompile) and a single-environment compile.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .kapitan_runner import kapitan_executable
from .repo import find_root

COPIED = (".kapitan", "inventory", "components", "kapitan")


def _copy(root: Path, dest: Path) -> None:
    for name in COPIED:
        src = root / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / name)


def _timed(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run([kapitan_executable(), *args], cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"bench: kapitan {' '.join(args)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return elapsed


def run(extra_environments: int, repeats: int) -> dict[str, float]:
    root = find_root()
    with tempfile.TemporaryDirectory(prefix="airflow-gitops-bench-") as tmp:
        work = Path(tmp)
        _copy(root, work)
        single = statistics.median(_timed(["compile", "-t", "dev"], work) for _ in range(repeats))
        template = (work / "inventory" / "targets" / "staging.yml").read_text()
        for i in range(extra_environments):
            (work / "inventory" / "targets" / f"bench-{i:03d}.yml").write_text(template)
        first = _timed(["compile"], work)
        steady = statistics.median(_timed(["compile"], work) for _ in range(repeats))
    return {"single": single, "first": first, "steady": steady}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airflow-gitops-bench", description=__doc__)
    parser.add_argument("--environments", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    figures = run(args.environments, args.repeats)
    total = args.environments + 3
    print(f"one environment (kapitan compile -t dev), median of {args.repeats}: {figures['single']:.2f} s")
    print(f"{total} environments, first compile (generates {args.environments} sets of refs): {figures['first']:.2f} s")
    print(f"{total} environments, recompile, median of {args.repeats}: {figures['steady']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
