"""`airflow-gitops diff` on a large change: 50 environments (47 copies of staging), one class
changed (Airflow 3.3.2 -> 3.4.0 in airflow.defaults, which relabels every object). The Markdown
comment stays under GitHub's limit with the whole summary; the diff takes a fraction of the
compile that produced the change."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import compile_in, copy_repo
from test_diff import CLI, git

EXTRA = 47


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    root = copy_repo(tmp_path_factory.mktemp("diff-large") / "repo")
    template = (root / "inventory/targets/staging.yml").read_text()
    for i in range(EXTRA):
        (root / f"inventory/targets/env-{i:03d}.yml").write_text(template)
    assert compile_in(root).returncode == 0
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "50 environments")
    options = root / "kapitan/schemas/airflow-config-options"
    shutil.copy(options / "3.3.2.json", options / "3.4.0.json")
    defaults = root / "inventory/classes/airflow/defaults.yml"
    defaults.write_text(defaults.read_text().replace("version: 3.3.2", "version: 3.4.0").replace("tag: 3.3.2", "tag: 3.4.0"))
    start = time.perf_counter()
    result = compile_in(root)
    compile_seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-2000:]
    git(root, "checkout", "-q", "-b", "upgrade")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "upgrade")
    return root, compile_seconds


def _diff(root: Path, *args: str) -> tuple[str, float]:
    start = time.perf_counter()
    result = subprocess.run([CLI, "diff", "--base", "main", "--head", "upgrade", *args], cwd=root, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    return result.stdout, elapsed


def test_markdown_of_a_large_change_fits_a_comment_with_the_whole_summary(upgraded: tuple[Path, float]) -> None:
    root, _ = upgraded
    markdown, _ = _diff(root, "--format", "markdown")
    assert len(markdown) <= 65536
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith(("| environment", "| ---"))]
    assert len(rows) == 50
    assert all("runs: Airflow 3.3.2 -&gt; 3.4.0" in row for row in rows)
    assert markdown.count("<details>") == 50
    assert "_Some details were shortened to fit a comment" in markdown
    text, _ = _diff(root)
    assert len(text) > 65536  # there was something to shorten


def test_diff_of_fifty_environments_takes_a_fraction_of_their_compile(upgraded: tuple[Path, float]) -> None:
    root, compile_seconds = upgraded
    times = sorted(_diff(root, "--format", "markdown")[1] for _ in range(3))
    print(f"\n50 environments, one class changed: diff {times[1]:.2f} s (median of 3), compile {compile_seconds:.2f} s")
    assert times[1] < compile_seconds / 2
