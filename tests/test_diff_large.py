"""`airflow-gitops diff` on a large change: 50 environments (47 copies of staging), one class
changed (Airflow 3.3.2 -> 3.4.0 in airflow.defaults, which relabels every object). The Markdown
comment stays under GitHub's limit with the whole summary. (How long the diff takes beside the
compile that produced the change is a figure of `make bench`, not a timed test.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import compile_in, copy_repo
from test_diff import CLI, git

EXTRA = 47


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory: pytest.TempPathFactory) -> Path:
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
    result = compile_in(root)
    assert result.returncode == 0, result.stderr[-2000:]
    git(root, "checkout", "-q", "-b", "upgrade")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "upgrade")
    return root


def _diff(root: Path, *args: str) -> str:
    result = subprocess.run([CLI, "diff", "--base", "main", "--head", "upgrade", *args], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_markdown_of_a_large_change_fits_a_comment_with_the_whole_summary(upgraded: Path) -> None:
    root = upgraded
    markdown = _diff(root, "--format", "markdown")
    assert len(markdown) <= 65536
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith(("| environment", "| ---"))]
    assert len(rows) == 50
    assert all("runs: Airflow 3.3.2 -&gt; 3.4.0" in row for row in rows)
    assert markdown.count("<details>") == 50
    assert "_Some details were shortened to fit a comment" in markdown
    text = _diff(root)
    assert len(text) > 65536  # there was something to shorten
