"""The tool virtualenvs (Airflow, checkov): built with uv, pip when uv cannot, rebuilt from scratch
after a failure, and a failure explained."""

from __future__ import annotations

import subprocess

import pytest

from airflow_gitops.errors import AirflowEnvironmentError
from airflow_gitops.venvs import ensure_venv


def installed(path) -> str:
    return subprocess.run([str(path / "bin" / "python"), "-c", "import six; print(six.__version__)"],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_a_tool_environment_is_built_once_with_uv_and_reused(tmp_path):
    path = ensure_venv(tmp_path / "six-env", ["six==1.16.0"], "six")
    assert installed(path) == "1.16.0"
    assert not (path / "bin" / "pip").exists()  # uv installed it: no pip was needed
    marker = (path / ".ready").stat().st_mtime_ns
    assert ensure_venv(path, ["six==1.16.0"], "six") == path and (path / ".ready").stat().st_mtime_ns == marker


def test_pip_builds_it_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_GITOPS_INSTALLER", "pip")
    path = ensure_venv(tmp_path / "six-env", ["six==1.16.0"], "six")
    assert installed(path) == "1.16.0" and (path / "bin" / "pip").exists()


def test_a_package_no_installer_finds_fails_with_the_installer_s_reason_and_leaves_nothing(tmp_path):
    with pytest.raises(AirflowEnvironmentError, match=r"could not install a missing tool into .*no-such-env:\n(.|\n)*airflow-gitops-no-such-package"):
        ensure_venv(tmp_path / "no-such-env", ["airflow-gitops-no-such-package==0.0.1"], "a missing tool")
    assert not (tmp_path / "no-such-env").exists()
