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
    yield f"file://{bare}", work
    work.close()  # stops the git cat-file processes GitPython keeps for it


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


def diverge(work: git.Repo) -> tuple[str, str]:
    """staging and prod with a commit each that the other lacks (a direct sync to prod): the hotfix
    on prod and the commit staging runs."""
    base = commit(work, "a.py")
    work.git.push("-q", "origin", "HEAD:refs/heads/staging")
    hotfix = commit(work, "hotfix.py")
    work.git.push("-q", "origin", "HEAD:refs/heads/prod")
    work.git.checkout("-q", base)
    staged = commit(work, "b.py")
    work.git.push("-q", "origin", "HEAD:refs/heads/staging")
    return hotfix, staged


def test_a_refused_promotion_names_the_reset_that_recovers(dag_repo):
    url, work = dag_repo
    hotfix, _ = diverge(work)
    with pytest.raises(PromotionError) as error:
        promote(REPO, "staging", "prod", repo=url)
    assert "airflow-gitops promote-dags --from staging --to prod --reset" in str(error.value)
    assert head(url, "refs/heads/prod") == hotfix


def test_reset_moves_a_diverged_prod_branch_to_the_staging_commit_and_lists_what_it_drops(dag_repo):
    url, work = dag_repo
    hotfix, staged = diverge(work)
    result = promote(REPO, "staging", "prod", repo=url, reset=True)
    assert result.changed and result.previous == hotfix and result.commit == staged
    assert [line.split()[0] for line in result.discarded] == [hotfix[:12]] and "hotfix.py" in result.discarded[0]
    assert head(url, "refs/heads/prod") == staged
    # A fast-forward drops nothing, with or without --reset.
    newer = commit(work, "c.py")
    work.git.push("-q", "origin", "HEAD:refs/heads/staging")
    again = promote(REPO, "staging", "prod", repo=url, reset=True)
    assert again.discarded == () and head(url, "refs/heads/prod") == newer


def test_reset_is_refused_when_prod_moved_since_it_was_read(dag_repo, monkeypatch):
    """The reset is pushed with a lease on the commit it read: a push to prod meanwhile is kept."""
    from airflow_gitops.dags import promote as promote_module

    url, work = dag_repo
    hotfix, _ = diverge(work)
    work.git.checkout("-q", hotfix)
    later = commit(work, "later.py")
    real_remote_refs = promote_module._remote_refs

    def read_then_somebody_pushes(url_: str, name: str) -> dict[str, str]:
        refs = real_remote_refs(url_, name)
        if name == "prod":
            work.git.push("-q", "origin", "HEAD:refs/heads/prod")
        return refs

    monkeypatch.setattr(promote_module, "_remote_refs", read_then_somebody_pushes)
    with pytest.raises(PromotionError, match="push to .* refused"):
        promote(REPO, "staging", "prod", repo=url, reset=True)
    assert head(url, "refs/heads/prod") == later


def test_from_defaults_to_the_environment_prod_is_promoted_from(dag_repo):
    url, work = dag_repo
    staged = commit(work, "a.py")
    work.git.push("-q", "origin", "HEAD:refs/heads/staging")
    result = promote(REPO, None, "prod", repo=url)
    assert result.source_env == "staging" and head(url, "refs/heads/prod") == staged


def test_promotion_from_another_environment_than_the_inventory_names_is_refused(dag_repo):
    url, work = dag_repo
    commit(work, "a.py")
    work.git.push("-q", "origin", "HEAD:refs/heads/main")
    with pytest.raises(PromotionError) as error:
        promote(REPO, "dev", "prod", repo=url)
    assert str(error.value).startswith("inventory/targets/prod.yml: parameters.airflow.dags.git_sync.promoted_from: "
                                       "prod's DAGs are promoted from staging, not from dev")
    assert head(url, "refs/heads/prod") == ""


def test_promotion_without_from_to_an_environment_promoted_from_nowhere_names_the_key():
    with pytest.raises(PromotionError) as error:
        promote(REPO, None, "staging")
    assert str(error.value) == ("inventory/targets/staging.yml: parameters.airflow.dags.git_sync.promoted_from is empty: "
                                "name the environment to promote from with --from (or set promoted_from)")


def test_an_unknown_promoted_from_is_refused_with_file_key_and_a_suggestion(scratch_repo):
    from airflow_gitops.errors import InventoryError

    target = scratch_repo / "inventory" / "targets" / "prod.yml"
    text = target.read_text()
    assert "promoted_from: staging" in text
    target.write_text(text.replace("promoted_from: staging", "promoted_from: stagin"))
    with pytest.raises(InventoryError) as error:
        promote(scratch_repo, None, "prod")
    assert str(error.value) == ("inventory/targets/prod.yml: parameters.airflow.dags.git_sync.promoted_from: 'stagin' "
                                "is not an environment (did you mean staging? known: dev, prod, staging)")
    target.write_text(text.replace("promoted_from: staging", "promoted_from: prod"))
    with pytest.raises(InventoryError, match="promoted_from: 'prod' is this environment itself"):
        promote(scratch_repo, None, "prod")


def test_an_annotated_prod_tag_is_moved_too(dag_repo, scratch_repo):
    url, work = dag_repo
    old = commit(work, "a.py")
    work.git.tag("-a", "-m", "prod", "prod", old, env=IDENTITY)
    work.git.push("-q", "origin", "refs/tags/prod")
    staged = commit(work, "b.py")
    work.git.push("-q", "origin", "HEAD:refs/heads/staging")
    target = scratch_repo / "inventory" / "targets" / "prod.yml"
    target.write_text(target.read_text().replace("        ref: prod\n", "        ref: prod\n        ref_type: tag\n"))
    result = promote(scratch_repo, "staging", "prod", repo=url)
    assert result.previous == old and head(url, "refs/tags/prod") == staged
