"""`airflow-gitops promote-dags`: prod's DAG ref moves forward to exactly what staging runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import git
import pytest

from airflow_gitops.dags.promote import PromotionError, promote
from conftest import REPO

IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}


@pytest.fixture
def dag_repo(tmp_path):
    """A bare DAG repository and a clone to push commits to its branches."""
    bare = tmp_path / "dags.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    work = git.Repo.init(tmp_path / "work", initial_branch="staging")
    work.create_remote("origin", f"file://{bare}")
    return f"file://{bare}", work


def commit(work: git.Repo, name: str) -> str:
    (Path(work.working_dir) / name).write_text(name)
    work.git.add(name)
    work.git.commit("-qm", name, env=IDENTITY)
    return work.head.commit.hexsha


def head(url: str, ref: str) -> str:
    out = subprocess.run(["git", "ls-remote", url, ref], capture_output=True, text=True).stdout
    return out.split()[0] if out else ""


def test_prod_branch_is_fast_forwarded_to_the_staging_commit(dag_repo):
    url, work = dag_repo
    tested = commit(work, "a.py")
    work.git.push("-q", "origin", "HEAD:refs/heads/prod")
    staged = commit(work, "b.py")
    work.git.push("-q", "origin", "HEAD:refs/heads/staging")
    result = promote(REPO, "staging", "prod", repo=url)
    assert result.changed and result.previous == tested and result.commit == staged and result.kind == "branch"
    assert head(url, "refs/heads/prod") == staged
    assert not promote(REPO, "staging", "prod", repo=url).changed


def test_promotion_creates_a_missing_prod_branch(dag_repo):
    url, work = dag_repo
    staged = commit(work, "a.py")
    work.git.push("-q", "origin", "HEAD:refs/heads/staging")
    assert promote(REPO, "staging", "prod", repo=url).previous is None
    assert head(url, "refs/heads/prod") == staged


def test_promotion_is_refused_when_prod_has_commits_staging_lacks(dag_repo):
    url, work = dag_repo
    commit(work, "a.py")
    work.git.push("-q", "origin", "HEAD:refs/heads/staging")
    hotfix = commit(work, "hotfix.py")
    work.git.push("-q", "origin", "HEAD:refs/heads/prod")
    with pytest.raises(PromotionError, match="has commits that staging's 'staging'"):
        promote(REPO, "staging", "prod", repo=url)
    assert head(url, "refs/heads/prod") == hotfix


def test_a_prod_tag_is_moved_forward_when_the_inventory_says_tag(dag_repo, scratch_repo):
    url, work = dag_repo
    old = commit(work, "a.py")
    work.git.push("-q", "origin", f"{old}:refs/tags/prod")
    staged = commit(work, "b.py")
    work.git.push("-q", "origin", "HEAD:refs/heads/staging")
    with pytest.raises(PromotionError, match="'prod' is a tag there, but the inventory of prod says dags.git_sync.ref_type: branch"):
        promote(REPO, "staging", "prod", repo=url)
    target = scratch_repo / "inventory" / "targets" / "prod.yml"
    target.write_text(target.read_text().replace("        ref: prod\n", "        ref: prod\n        ref_type: tag\n"))
    result = promote(scratch_repo, "staging", "prod", repo=url)
    assert result.kind == "tag" and head(url, "refs/tags/prod") == staged
    assert head(url, "refs/heads/prod") == ""


def test_promotion_without_a_staging_ref_says_to_sync_first(dag_repo):
    url, _ = dag_repo
    with pytest.raises(PromotionError, match="does not exist: sync its DAGs first"):
        promote(REPO, "staging", "prod", repo=url)


def test_promotion_across_repositories_is_refused(scratch_repo):
    target = scratch_repo / "inventory" / "targets" / "prod.yml"
    target.write_text(target.read_text().replace("        ref: prod\n", "        ref: prod\n        repo: https://example.com/other.git\n"))
    with pytest.raises(PromotionError, match="promotion moves a ref inside one repository"):
        promote(scratch_repo, "staging", "prod")
