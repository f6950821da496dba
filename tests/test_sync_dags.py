"""`airflow-gitops sync-dags` against real Git repositories: bare repositories over file:// and a
`git daemon` on 127.0.0.1, the real DagBag import check of Airflow 3.3.2."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import git
import pytest

from airflow_gitops.dags.check import DagCheckError, check_syntax
from airflow_gitops.dags.mirror import MirrorError
from airflow_gitops.dags.publish import Identity, PublishError, Publisher
from airflow_gitops.dags.source import scan
from airflow_gitops.dags.sync import sync_dags
from conftest import REPO, start_group, stop_groups

CLI = str(Path(sys.executable).with_name("airflow-gitops"))
GOOD_DAG = '''
import pendulum
from airflow.sdk import dag, task

@dag(dag_id="{dag_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def build():
    @task
    def hello():
        return "{dag_id}"
    hello()

build()
'''


def write_dag(source: Path, name: str, dag_id: str | None = None) -> Path:
    path = source / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(GOOD_DAG.format(dag_id=dag_id or Path(name).stem))
    return path


def bare_repo(path: Path, seed: dict[str, str] | None = None, branch: str = "main") -> str:
    """A bare repository, optionally with a first commit holding `seed` files."""
    subprocess.run(["git", "init", "-q", "--bare", "-b", branch, str(path)], check=True)
    if seed:
        work = path.parent / (path.name + "-seed")
        repo = git.Repo.init(work, initial_branch=branch)
        for name, text in seed.items():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            (work / name).write_text(text)
        repo.git.add("--all")
        repo.git.commit("-qm", "seed", env={"GIT_AUTHOR_NAME": "seed", "GIT_AUTHOR_EMAIL": "s@e", "GIT_COMMITTER_NAME": "seed", "GIT_COMMITTER_EMAIL": "s@e"})
        repo.git.push("-q", str(path), f"HEAD:refs/heads/{branch}")
    return f"file://{path}"


def remote_tree(url: str, branch: str = "main") -> dict[str, str]:
    bare = url.removeprefix("file://")
    listing = subprocess.run(["git", "--git-dir", bare, "ls-tree", "-r", "-z", "--name-only", branch], capture_output=True, text=True).stdout
    return {p: subprocess.run(["git", "--git-dir", bare, "show", f"{branch}:{p}"], capture_output=True, text=True).stdout
            for p in listing.split("\0") if p}


def remote_head(url: str, branch: str = "main") -> str:
    out = subprocess.run(["git", "ls-remote", url, f"refs/heads/{branch}"], capture_output=True, text=True).stdout
    return out.split()[0] if out else ""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache of sync work directories of its own (Airflow environments stay shared)."""
    path = tmp_path / "cache"
    monkeypatch.setenv("AIRFLOW_GITOPS_SYNC_CACHE", str(path))
    return path


def sync(source: Path, url: str, **kwargs):
    return sync_dags(REPO, "dev", source=source, repo=url, branch="main", **kwargs)


def test_first_sync_publishes_and_second_is_up_to_date(tmp_path, cache):
    url = bare_repo(tmp_path / "dags.git")
    source = tmp_path / "src"
    write_dag(source, "etl.py")
    write_dag(source, "team/report.py")
    first = sync(source, url, import_check=False)
    assert first.status == "published" and sorted(first.plan.added) == ["etl.py", "team/report.py"]
    tree = remote_tree(url)
    assert tree["dags/etl.py"] == (source / "etl.py").read_text()
    with git.Repo(url.removeprefix("file://")) as published:  # closed: its git cat-file processes stop
        assert "Source-Commit:" in published.commit("main").message
    head = remote_head(url)
    second = sync(source, url, import_check=False)
    assert second.status == "up-to-date" and second.commit is None
    assert remote_head(url) == head


def test_mirror_removes_only_managed_files_and_never_touches_others(tmp_path, cache):
    url = bare_repo(tmp_path / "dags.git", {"README.md": "owned by humans\n", "dags/legacy.py": "# not ours\n"})
    source = tmp_path / "src"
    write_dag(source, "a.py")
    write_dag(source, "b/c.py")
    sync(source, url, import_check=False)
    (source / "b" / "c.py").unlink()
    write_dag(source, "a.py", dag_id="a_renamed")
    result = sync(source, url, import_check=False)
    assert result.plan.removed == ["b/c.py"] and result.plan.changed == ["a.py"]
    tree = remote_tree(url)
    assert "dags/b/c.py" not in tree
    assert tree["README.md"] == "owned by humans\n" and tree["dags/legacy.py"] == "# not ours\n"
    assert "a_renamed" in tree["dags/a.py"]


def test_airflowignore_and_bytecode_are_honoured(tmp_path, cache):
    url = bare_repo(tmp_path / "dags.git")
    source = tmp_path / "src"
    write_dag(source, "keep.py")
    write_dag(source, "scratch/skip.py")
    write_dag(source, "notes_skip.py")
    (source / ".airflowignore").write_text("scratch/\n*_skip.py\n")
    (source / "__pycache__").mkdir()
    (source / "__pycache__" / "keep.cpython-311.pyc").write_bytes(b"\0")
    (source / "stale.pyc").write_bytes(b"\0")
    sync(source, url, import_check=False)
    assert sorted(remote_tree(url)) == ["dags/.airflow-gitops-managed.json", "dags/.airflowignore", "dags/keep.py"]


def test_dry_run_prints_the_plan_and_touches_nothing(tmp_path, cache):
    url = bare_repo(tmp_path / "dags.git", {"README.md": "x\n"})
    head = remote_head(url)
    source = tmp_path / "src"
    write_dag(source, "etl.py")
    result = sync(source, url, import_check=False, dry_run=True)
    assert result.status == "dry-run" and result.plan.added == ["etl.py"]
    assert remote_head(url) == head


def test_cli_json_summary_and_exit_codes(tmp_path, cache):
    url = bare_repo(tmp_path / "dags.git")
    source = tmp_path / "src"
    write_dag(source, "etl.py")
    args = [CLI, "sync-dags", "--target", "dev", "--repo", url, "--branch", "main", "--source", str(source), "--no-import-check"]
    result = subprocess.run([*args, "--json"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "published" and summary["added"] == ["etl.py"] and summary["sub_path"] == "dags"
    again = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 0 and "up to date" in again.stdout
    (source / "broken.py").write_text("def broken(:\n")
    refused = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    assert refused.returncode == 1 and "broken.py:1: syntax error" in refused.stderr


def test_syntax_error_is_refused_with_file_and_line_and_remote_untouched(tmp_path, cache):
    url = bare_repo(tmp_path / "dags.git", {"README.md": "x\n"})
    head = remote_head(url)
    source = tmp_path / "src"
    write_dag(source, "ok.py")
    (source / "bad.py").write_text("x = 1\nif x\n    pass\n")
    with pytest.raises(DagCheckError) as error:
        sync(source, url, import_check=False)
    assert error.value.problems == ["bad.py:2: syntax error: expected ':'"]
    assert remote_head(url) == head


@pytest.mark.slow
def test_import_check_refuses_missing_modules_and_duplicate_dag_ids(tmp_path, cache):
    url = bare_repo(tmp_path / "dags.git", {"README.md": "x\n"})
    head = remote_head(url)
    source = tmp_path / "src"
    write_dag(source, "good.py")
    (source / "missing.py").write_text("from airflow.sdk import dag\nimport no_such_module_anywhere\n")
    write_dag(source, "one.py", dag_id="same_id")
    write_dag(source, "two.py", dag_id="same_id")
    with pytest.raises(DagCheckError) as error:
        sync(source, url)
    problems = "\n".join(error.value.problems)
    assert "missing.py: import error: ModuleNotFoundError: No module named 'no_such_module_anywhere'" in problems
    assert "two.py: duplicate DAG id 'same_id' (also defined in one.py)" in problems
    assert "good.py" not in problems
    assert remote_head(url) == head


@pytest.mark.slow
def test_import_check_passes_real_dags_and_caches_unchanged_files(tmp_path, cache):
    url = bare_repo(tmp_path / "dags.git")
    source = tmp_path / "src"
    unique = uuid.uuid4().hex[:12]  # contents never seen before, so nothing is cached yet
    for i in range(3):
        write_dag(source, f"dag_{i}_{unique}.py")
    first = sync(source, url)
    assert first.status == "published" and first.dag_files == 3 and first.imported == 3
    write_dag(source, f"dag_0_{unique}.py", dag_id=f"changed_{unique}")
    second = sync(source, url)
    assert second.imported == 1 and second.cached == 2


def start_git_daemon(base: Path) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # In a process group of its own: stopping it stops the git processes serving its connections.
    daemon = start_group(
        ["git", "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={port}", f"--base-path={base}",
         "--export-all", "--enable=receive-pack", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if subprocess.run(["git", "ls-remote", f"git://127.0.0.1:{port}/dags.git"], capture_output=True).returncode == 0:
            return daemon, port
        time.sleep(0.1)
    stop_groups([daemon])
    pytest.fail("git daemon did not start")


def test_concurrent_syncs_all_finish_and_the_remote_equals_one_source(tmp_path):
    base = tmp_path / "served"
    base.mkdir()
    bare_repo(base / "dags.git", {"README.md": "outside the sub-path\n"})
    daemon, port = start_git_daemon(base)
    url = f"git://127.0.0.1:{port}/dags.git"
    procs: list[subprocess.Popen] = []
    try:
        sources = []
        for n in range(3):
            source = tmp_path / f"src{n}"
            for i in range(20):
                write_dag(source, f"dag_{i}.py", dag_id=f"dag_{i}_from_{n}")
            sources.append(source)
        procs = [
            start_group(
                [CLI, "sync-dags", "--target", "dev", "--repo", url, "--branch", "main", "--source", str(s),
                 "--no-import-check", "--json"],
                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env={**os.environ, "AIRFLOW_GITOPS_SYNC_CACHE": str(tmp_path / f"cache{n}")},
            )
            for n, s in enumerate(sources)
        ]
        # Meanwhile somebody else commits outside the sub-path: that commit must survive.
        other = git.Repo.clone_from(url, tmp_path / "other")
        (tmp_path / "other" / "NOTES.md").write_text("not DAGs\n")
        other.git.add("NOTES.md")
        other.git.commit("-qm", "notes", env={"GIT_AUTHOR_NAME": "o", "GIT_AUTHOR_EMAIL": "o@e", "GIT_COMMITTER_NAME": "o", "GIT_COMMITTER_EMAIL": "o@e"})
        for _ in range(20):
            if subprocess.run(["git", "push", "-q", "origin", "HEAD:main"], cwd=other.working_dir, capture_output=True).returncode == 0:
                break
            other.git.pull("--rebase", "-q", "origin", "main")
        results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
        for code, out, err in results:
            assert code == 0, err
        tree = remote_tree(f"file://{base / 'dags.git'}")
        assert tree["README.md"] == "outside the sub-path\n" and tree["NOTES.md"] == "not DAGs\n"
        dags = {p: t for p, t in tree.items() if p.startswith("dags/") and p.endswith(".py")}
        matching = [n for n, s in enumerate(sources)
                    if dags == {f"dags/{p.name}": p.read_text() for p in s.glob("*.py")}]
        assert len(matching) == 1, "the remote must equal exactly one of the sources, never a mix"
        assert sum(json.loads(out)["status"] == "published" for _, out, _ in results) >= 1
    finally:
        stop_groups([*procs, daemon])


def test_killed_sync_never_half_updates_the_remote_and_the_next_run_recovers(tmp_path):
    url = bare_repo(tmp_path / "dags.git", {"README.md": "x\n"})
    source = tmp_path / "src"
    for i in range(300):
        write_dag(source, f"dag_{i:03d}.py")
    expected = {f"dags/{p.name}": p.read_text() for p in source.glob("*.py")}
    env = {**os.environ, "AIRFLOW_GITOPS_SYNC_CACHE": str(tmp_path / "cache")}
    args = [CLI, "sync-dags", "--target", "dev", "--repo", url, "--branch", "main", "--source", str(source), "--no-import-check"]
    for delay in (0.3, 0.45, 0.6, 0.75):
        # Killed with the git processes it runs, as a CI job's timeout or an OOM kill of its group would.
        proc = start_group(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(delay)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            stop_groups([proc], timeout=10)
        tree = remote_tree(url)
        dags = {p: t for p, t in tree.items() if p.startswith("dags/") and p.endswith(".py")}
        assert dags in ({}, expected), "a killed sync left the remote half-updated"
        if dags == expected:
            break
    # Locks a crash leaves behind in the cache repository are recovered.
    for cache_repo in (tmp_path / "cache" / "sync-dags").glob("*/"):
        for lock in ("shallow.lock", "refs/remotes/origin/main.lock", "refs/airflow-gitops/publish.lock"):
            (cache_repo / lock).parent.mkdir(parents=True, exist_ok=True)
            (cache_repo / lock).write_text("")
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    tree = remote_tree(url)
    assert {p: t for p, t in tree.items() if p.startswith("dags/") and p.endswith(".py")} == expected
    assert tree["README.md"] == "x\n"


@pytest.mark.slow
def test_the_repository_dags_pass_the_import_check_with_their_requirements(tmp_path, cache):
    url = bare_repo(tmp_path / "dags.git")
    result = sync_dags(REPO, "staging", repo=url, branch="staging", dry_run=True)
    assert result.status == "dry-run" and result.dag_files >= 3
    ids = {dag_id for ids in result.dag_ids.values() for dag_id in ids}
    assert {"example_etl", "example_kubernetes_pod", "example_asset_producer", "example_asset_consumer"} <= ids


def caches(cache: Path) -> list[Path]:
    return [p for p in (cache / "sync-dags").glob("*") if p.is_dir()]


def test_a_damaged_or_older_cache_is_rebuilt_from_the_remote(tmp_path, cache):
    url = bare_repo(tmp_path / "dags.git", {"README.md": "x\n"})
    source = tmp_path / "src"
    write_dag(source, "a.py")
    sync(source, url, import_check=False)
    [cache_repo] = caches(cache)
    shutil.rmtree(cache_repo / "objects")  # damaged: refs name objects that are gone
    (cache_repo / "objects").mkdir()
    write_dag(source, "b.py")
    assert sync(source, url, import_check=False).plan.added == ["b.py"]
    shutil.rmtree(cache_repo)  # the work-tree clone earlier versions kept there
    git.Repo.clone_from(url, cache_repo)
    write_dag(source, "c.py")
    assert sync(source, url, import_check=False).plan.added == ["c.py"]
    assert sorted(p for p in remote_tree(url) if p.endswith(".py")) == ["dags/a.py", "dags/b.py", "dags/c.py"]


def test_a_file_where_an_unmanaged_directory_is_refused_and_the_remote_untouched(tmp_path, cache):
    url = bare_repo(tmp_path / "dags.git", {"dags/reports/owned.py": "# not ours\n", "dags/notes": "a file\n"})
    head = remote_head(url)
    source = tmp_path / "src"
    write_dag(source, "reports")  # a file named like their directory
    with pytest.raises(MirrorError) as error:
        sync(source, url, import_check=False)
    assert "reports: the DAG repository has a directory of that name" in str(error.value)
    (source / "reports").unlink()
    write_dag(source, "notes/etl.py")  # a directory named like their file
    with pytest.raises(MirrorError) as error:
        sync(source, url, import_check=False)
    assert "notes/etl.py: the DAG repository has a file notes that sync-dags does not manage" in str(error.value)
    assert remote_head(url) == head


def test_names_and_contents_outside_ascii_round_trip(tmp_path, cache):
    url = bare_repo(tmp_path / "dags.git")
    source = tmp_path / "src"
    write_dag(source, "équipe données/rapport \"été\".py", dag_id="rapport_ete")
    result = sync(source, url, import_check=False, author="Zoë Müller <zoe@example.com>")
    assert result.status == "published"
    tree = remote_tree(url)
    assert tree['dags/équipe données/rapport "été".py'] == (source / "équipe données" / 'rapport "été".py').read_text()
    with git.Repo(url.removeprefix("file://")) as published:
        commit = published.commit("main")
        assert commit.author.name == "Zoë Müller" and commit.author.email == "zoe@example.com"
    assert sync(source, url, import_check=False).status == "up-to-date"


def test_an_unusable_author_is_refused_before_anything_is_done(tmp_path, cache):
    url = bare_repo(tmp_path / "dags.git")
    source = tmp_path / "src"
    write_dag(source, "a.py")
    for author in ("nobody", "a <b> <c@d>", "Name <>"):
        with pytest.raises(PublishError, match="expected 'Name <email>'"):
            sync(source, url, import_check=False, author=author)
    assert remote_head(url) == ""


def push_from_clone(url: str, tmp_path: Path, change) -> None:
    """Somebody else's commit on the DAG branch."""
    other = git.Repo.clone_from(url, tmp_path / f"other-{uuid.uuid4().hex[:6]}")
    change(Path(other.working_dir))
    other.git.add("--all")
    other.git.commit("-qm", "by hand", env={"GIT_AUTHOR_NAME": "o", "GIT_AUTHOR_EMAIL": "o@e", "GIT_COMMITTER_NAME": "o", "GIT_COMMITTER_EMAIL": "o@e"})
    other.git.push("-q", "origin", "HEAD:main")


def test_changes_made_by_others_in_the_sub_path_are_seen_on_the_next_sync(tmp_path, cache):
    url = bare_repo(tmp_path / "dags.git")
    source = tmp_path / "src"
    write_dag(source, "a.py")
    write_dag(source, "b.py")
    sync(source, url, import_check=False)
    push_from_clone(url, tmp_path, lambda work: ((work / "dags" / "a.py").write_text("# edited by hand\n"),
                                                 (work / "dags" / "theirs.py").write_text("# theirs\n")))
    result = sync(source, url, import_check=False)
    assert result.status == "published" and result.plan.changed == ["a.py"] and result.plan.added == []
    assert remote_tree(url)["dags/theirs.py"] == "# theirs\n"
    # Their manifest edit (a file removed from the managed list) is read too.
    push_from_clone(url, tmp_path, lambda work: (work / "dags" / ".airflow-gitops-managed.json").write_text(
        json.dumps({"files": ["a.py"]})))
    (source / "b.py").unlink()
    result = sync(source, url, import_check=False)
    assert result.plan.removed == [] and "dags/b.py" in remote_tree(url), "b.py is no longer ours to remove"
    # What the cache remembers is only a shortcut: unreadable, it is rebuilt from the remote.
    for memory in caches(cache)[0].glob("sync-listing-*"):
        memory.write_bytes(b"not marshal")
    write_dag(source, "c.py")
    assert sync(source, url, import_check=False).plan.added == ["c.py"]


def publisher(url: str, cache: Path, sub_path: str = "dags") -> Publisher:
    return Publisher(url=url, branch="main", sub_path=sub_path, cache=cache)


AUTHOR = Identity("t", "t@e")


def publish_source(pub: Publisher, source: Path, files=None, **kwargs):
    """One publication of `source` (as scanned now, unless `files` says what the checks saw)."""
    files = scan(source) if files is None else files
    return pub.publish(source_root=source, files=files, message=lambda plan: "x", author=AUTHOR, committer=AUTHOR, **kwargs)


def test_a_nested_sub_path_under_somebody_elses_file_is_refused(tmp_path, cache):
    url = bare_repo(tmp_path / "dags.git", {"team": "a file owned by humans\n"})
    head = remote_head(url)
    source = tmp_path / "src"
    write_dag(source, "a.py")
    with publisher(url, cache, sub_path="team/dags") as pub, pytest.raises(MirrorError, match="team is a file, so the sub-path team/dags"):
        publish_source(pub, source)
    assert remote_head(url) == head


def test_a_file_changed_after_its_check_is_not_published(tmp_path, cache):
    url = bare_repo(tmp_path / "dags.git", {"README.md": "x\n"})
    head = remote_head(url)
    source = tmp_path / "src"
    write_dag(source, "a.py")
    files = scan(source)  # what the checks saw
    (source / "a.py").write_text("x = (\n")
    with publisher(url, cache) as pub, pytest.raises(PublishError, match="a.py: changed after it was checked; nothing was pushed"):
        publish_source(pub, source, files)
    assert remote_head(url) == head


def test_a_managed_file_removed_by_hand_is_dropped_from_the_managed_list(tmp_path, cache):
    url = bare_repo(tmp_path / "dags.git")
    source = tmp_path / "src"
    write_dag(source, "a.py")
    write_dag(source, "x.py")
    sync(source, url, import_check=False)
    push_from_clone(url, tmp_path, lambda work: (work / "dags" / "x.py").unlink())
    (source / "x.py").unlink()
    result = sync(source, url, import_check=False)
    assert result.status == "published" and result.plan.manifest_outdated
    assert "list of managed files brought up to date" in result.plan.summary()
    # A person's own x.py, added later, is theirs: never removed.
    push_from_clone(url, tmp_path, lambda work: (work / "dags" / "x.py").write_text("# a person's file\n"))
    assert sync(source, url, import_check=False).status == "up-to-date"
    assert remote_tree(url)["dags/x.py"] == "# a person's file\n"


def test_sources_and_manifests_sync_dags_cannot_use_are_refused_clearly(tmp_path, cache):
    url = bare_repo(tmp_path / "dags.git", {"README.md": "x\n"})
    push_from_clone(url, tmp_path, lambda work: ((work / "dags").mkdir(),
                                                 (work / "dags" / ".airflow-gitops-managed.json").write_bytes(b"\xff\xfe")))
    source = tmp_path / "src"
    write_dag(source, "a.py")
    with pytest.raises(MirrorError, match="not a manifest written by sync-dags"):
        sync(source, url, import_check=False)
    (source / ".airflow-gitops-managed.json").write_text("{}")
    with pytest.raises(MirrorError, match="may not hold a file of this name"):
        sync(source, bare_repo(tmp_path / "other.git"), import_check=False)
    (source / ".airflow-gitops-managed.json").unlink()
    (source / "generated.py").write_text("x = " + "1+" * 100000 + "1\n")
    with pytest.raises(DagCheckError) as error:
        sync(source, url, import_check=False)
    assert error.value.problems == ["generated.py: cannot be compiled: an expression is nested too deeply"]


def test_a_lock_left_on_the_server_is_named_when_the_push_gives_up(tmp_path, cache):
    url = bare_repo(tmp_path / "dags.git", {"README.md": "x\n"})
    (tmp_path / "dags.git" / "refs" / "heads" / "main.lock").write_text("")
    source = tmp_path / "src"
    write_dag(source, "a.py")
    with publisher(url, cache) as pub, pytest.raises(PublishError) as error:
        publish_source(pub, source, max_attempts=2)
    assert "gave up after 2 attempts" in str(error.value) and "main.lock': File exists" in str(error.value)
    assert "remove it there" in str(error.value)


def test_the_syntax_cache_stays_bounded_and_never_hides_an_error(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "good.py").write_text("a = 1\n")
    (source / "bad.py").write_text("b = (\n")
    cache_dir = tmp_path / "dag-check"
    cache_dir.mkdir()
    known = cache_dir / f"syntax-ok-py{sys.version_info[0]}{sys.version_info[1]}.txt"
    known.write_text("".join(f"{i:040x}\n" for i in range(25_000)))  # digests of long-gone files
    files = scan(source)
    assert check_syntax(source, files, 1, cache_dir) == ["bad.py:1: syntax error: '(' was never closed"]
    assert known.read_text().split() == [files["good.py"]]


PROMOTED_KEY = "inventory/targets/prod.yml: parameters.airflow.dags.git_sync.promoted_from"


def test_a_sync_to_an_environment_whose_dags_are_promoted_is_refused_and_pushes_nothing(tmp_path, cache):
    from airflow_gitops.dags.sync import DirectSyncRefused

    url = bare_repo(tmp_path / "dags.git")
    source = tmp_path / "src"
    write_dag(source, "etl.py")
    for dry_run in (False, True):
        with pytest.raises(DirectSyncRefused) as error:
            sync_dags(REPO, "prod", source=source, repo=url, import_check=False, dry_run=dry_run)
        message = str(error.value)
        assert message.startswith(f"{PROMOTED_KEY} is 'staging': prod's DAGs arrive by promotion, not by sync-dags")
        assert "airflow-gitops promote-dags --from staging --to prod" in message and "--allow-promoted" in message
    assert remote_head(url, "prod") == ""
    published = sync_dags(REPO, "prod", source=source, repo=url, import_check=False, allow_promoted=True)
    assert published.status == "published" and remote_head(url, "prod") == published.commit


def test_cli_refuses_a_direct_sync_to_prod_and_promote_reset_recovers_a_diverged_branch(tmp_path):
    """The whole story of issue 13 against one bare repository: the refusal, the override, the
    promotion it blocks, and the recovery."""
    url = bare_repo(tmp_path / "dags.git")
    staging_src, prod_src = tmp_path / "staging-src", tmp_path / "prod-src"
    write_dag(staging_src, "etl.py")
    write_dag(prod_src, "hotfix.py")
    env = {**os.environ, "AIRFLOW_GITOPS_SYNC_CACHE": str(tmp_path / "cache")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CLI, *args], cwd=REPO, env=env, capture_output=True, text=True)

    def sync_args(target: str, source: Path) -> list[str]:
        return ["sync-dags", "--target", target, "--repo", url, "--source", str(source), "--no-import-check"]

    assert cli(*sync_args("staging", staging_src)).returncode == 0
    refused = cli(*sync_args("prod", prod_src))
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith(f"error: {PROMOTED_KEY} is 'staging'")
    assert "airflow-gitops promote-dags --from staging --to prod" in refused.stderr
    assert remote_head(url, "prod") == ""
    # Forced through: prod now has a commit staging lacks, and promotion stops.
    assert cli(*sync_args("prod", prod_src), "--allow-promoted").returncode == 0
    diverged = remote_head(url, "prod")
    blocked = cli("promote-dags", "--to", "prod", "--repo", url)
    assert blocked.returncode == 1 and "--reset" in blocked.stderr
    assert remote_head(url, "prod") == diverged
    reset = cli("promote-dags", "--to", "prod", "--repo", url, "--reset")
    assert reset.returncode == 0, reset.stderr
    assert remote_head(url, "prod") == remote_head(url, "staging")
    assert f"dropped 1 commit prod had and staging lacks:\n  {diverged[:12]} Sync DAGs for prod" in reset.stdout
    assert remote_tree(url, "prod") == remote_tree(url, "staging")
