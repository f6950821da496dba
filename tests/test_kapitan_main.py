"""`python -m airflow_gitops.kapitan_main`: Kapitan's own command line, started without the modules of
`kapitan init` and `kapitan refs` until they are used. (That a compile through it gives the bytes
of a plain `kapitan compile` is tests/test_compile_step.py's first test.)"""

from __future__ import annotations

import subprocess
import sys

from conftest import KAPITAN, copy_repo
from airflow_gitops.kapitan_runner import kapitan_command


def run(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*kapitan_command(), *args], cwd=cwd, capture_output=True, text=True)


def test_it_answers_like_the_kapitan_script():
    assert run("--version").stdout == subprocess.run([KAPITAN, "--version"], capture_output=True, text=True).stdout
    assert run("compile", "--help").stdout.replace("kapitan_main", "kapitan") == \
        subprocess.run([KAPITAN, "compile", "--help"], capture_output=True, text=True).stdout


def test_kapitan_starts_without_the_project_generator_and_the_cloud_kms_clients():
    probe = ("import sys; from airflow_gitops import kapitan_main; kapitan_main.prepare(); "
             "import kapitan.cli; print(sorted(n for n in ('copier', 'boto3', 'azure.identity', 'googleapiclient') if n in sys.modules))")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_refs_are_written_and_revealed_through_the_deferred_module(tmp_path):
    root = copy_repo(tmp_path / "repo")
    (tmp_path / "value").write_text("hello")
    written = run("refs", "--write", "base64:targets/probe/value", "-f", str(tmp_path / "value"), cwd=root)
    assert written.returncode == 0, written.stderr
    (tmp_path / "tag").write_text("?{base64:targets/probe/value}\n")
    revealed = run("refs", "--reveal", "-f", str(tmp_path / "tag"), cwd=root)
    assert revealed.returncode == 0 and revealed.stdout.strip() == "hello", revealed.stderr
