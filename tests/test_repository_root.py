"""Commands find the repository from anywhere inside it, like Git and kapitan, and say so otherwise."""

from __future__ import annotations

import subprocess

import pytest

from airflow_gitops.errors import RepositoryError
from airflow_gitops.repo import find_root


def test_the_root_is_the_git_top_level_holding_dot_kapitan_from_any_subdirectory(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path / "repo")], check=True)
    (tmp_path / "repo" / ".kapitan").write_text("version: 0.36\n")
    (tmp_path / "repo" / "dags" / "team").mkdir(parents=True)
    assert find_root(tmp_path / "repo" / "dags" / "team") == (tmp_path / "repo").resolve()


def test_a_worktree_whose_dot_git_is_a_file_is_found(tmp_path):
    main = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(main)], check=True)
    (main / ".kapitan").write_text("version: 0.36\n")
    subprocess.run(["git", "-C", str(main), "add", ".kapitan"], check=True)
    subprocess.run(["git", "-C", str(main), "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "init"], check=True)
    subprocess.run(["git", "-C", str(main), "worktree", "add", "-q", str(tmp_path / "wt")], check=True)
    assert (tmp_path / "wt" / ".git").is_file()
    assert find_root(tmp_path / "wt") == (tmp_path / "wt").resolve()


def test_outside_a_repository_with_dot_kapitan_the_error_says_where_to_run(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path / "other")], check=True)
    with pytest.raises(RepositoryError, match="not inside an Airflow GitOps repository .*Run the command from your clone"):
        find_root(tmp_path / "other")
