"""`make compile`'s step (`airflow-gitops compile`): kapitan compiles into a scratch directory and
compiled/ is brought to the same bytes file by file, writing only what changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import read_tree, start_group, stop_groups

from airflow_gitops.compiled_tree import SCRATCH_ENV, mirror

CLI = str(Path(sys.executable).with_name("airflow-gitops"))
STAGING = "inventory/targets/staging.yml"


def compile_step(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if not (repo / ".git").exists():
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    return subprocess.run([CLI, "compile", *args], cwd=repo, capture_output=True, text=True, env=env)


def identities(tree: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(tree)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in tree.rglob("*") if p.is_file()}


def snapshot(tree: Path) -> dict[str, tuple[str, int, bytes]]:
    """Every path under `tree`, folders included, with its kind, mode and bytes."""
    def describe(p: Path) -> tuple[str, int, bytes]:
        kind = "link" if p.is_symlink() else "dir" if p.is_dir() else "file"
        return kind, p.lstat().st_mode & 0o7777, p.read_bytes() if kind == "file" else b""
    return {str(p.relative_to(tree)): describe(p) for p in tree.rglob("*")}


def test_the_compile_step_leaves_the_bytes_of_a_plain_kapitan_compile(scratch_repo, fresh_repo):
    compiled = scratch_repo / "compiled"
    (compiled / "dev" / "manifests" / "base" / "configmap-airflow-config.yaml").write_text("edited by hand\n")
    (compiled / "staging" / "manifests" / "base" / "notes.yaml").write_text("written by hand\n")
    (compiled / "prod" / "argocd" / "application-airflow-prod.yaml").unlink()
    (compiled / "removed-environment" / "manifests").mkdir(parents=True)
    (compiled / "removed-environment" / "manifests" / "namespace.yaml").write_text("kind: Namespace\n")
    (compiled / "dev" / "manifests" / "empty-folder").mkdir()
    (compiled / "dev" / "manifests" / "kustomization.yaml").chmod(0o444)
    result = compile_step(scratch_repo)
    assert result.returncode == 0, result.stderr
    assert "(5 files written or removed)" in result.stdout
    assert snapshot(compiled) == snapshot(fresh_repo / "compiled")


def test_a_recompile_with_nothing_changed_writes_no_file(scratch_repo):
    assert compile_step(scratch_repo).returncode == 0
    before = identities(scratch_repo / "compiled")
    result = compile_step(scratch_repo)
    assert result.returncode == 0, result.stderr
    assert "compiled/ is up to date: no environment's inputs changed since the last compile" in result.stdout
    assert identities(scratch_repo / "compiled") == before
    result = compile_step(scratch_repo, "--all")  # everything compiled again, nothing written
    assert result.returncode == 0, result.stderr
    assert "compiled every environment into compiled/ (0 files written or removed)" in result.stdout
    assert identities(scratch_repo / "compiled") == before


def test_a_changed_value_rewrites_only_the_files_it_changes(scratch_repo):
    target = scratch_repo / STAGING
    target.write_text(target.read_text() + "    scheduler:\n      replicas: 3\n")
    before = identities(scratch_repo / "compiled")
    result = compile_step(scratch_repo)
    assert result.returncode == 0, result.stderr
    after = identities(scratch_repo / "compiled")
    changed = sorted(name for name in after if before.get(name) != after[name])
    # Two schedulers get a PodDisruptionBudget, which the workloads' kustomization lists; the
    # environment's overview page shows the replicas.
    assert changed == [
        "staging/README.md",
        "staging/manifests/workloads/deployment-airflow-scheduler.yaml",
        "staging/manifests/workloads/kustomization.yaml",
        "staging/manifests/workloads/poddisruptionbudget-airflow-scheduler.yaml",
    ]
    assert "replicas: 3" in (scratch_repo / "compiled" / changed[1]).read_text()


def test_compiling_one_target_updates_only_its_folder(scratch_repo):
    dev_file = scratch_repo / "compiled" / "dev" / "manifests" / "kustomization.yaml"
    staging_file = scratch_repo / "compiled" / "staging" / "manifests" / "kustomization.yaml"
    original = dev_file.read_text()
    dev_file.write_text("edited\n")
    staging_file.write_text("edited\n")
    result = compile_step(scratch_repo, "--target", "dev")
    assert result.returncode == 0, result.stderr
    assert dev_file.read_text() == original
    # As with `kapitan compile -t dev`: the other environments are not touched.
    assert staging_file.read_text() == "edited\n"


def test_naming_every_target_is_a_full_compile(scratch_repo, fresh_repo):
    (scratch_repo / "compiled" / "removed-environment").mkdir()
    result = compile_step(scratch_repo, *[arg for env in ("bootstrap", "dev", "staging", "prod") for arg in ("--target", env)])
    assert result.returncode == 0, result.stderr
    assert snapshot(scratch_repo / "compiled") == snapshot(fresh_repo / "compiled")


def test_an_unknown_target_is_refused_and_nothing_is_written(scratch_repo):
    dev_file = scratch_repo / "compiled" / "dev" / "manifests" / "kustomization.yaml"
    dev_file.write_text("edited\n")
    before = snapshot(scratch_repo / "compiled")
    result = compile_step(scratch_repo, "--target", "dev", "--target", "qa")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: --target qa: no such environment (inventory/targets/qa.yml does not exist)"
    result = compile_step(scratch_repo, "--target", ".etc")
    assert result.returncode == 1
    assert "--target .etc: not an environment name" in result.stderr
    assert snapshot(scratch_repo / "compiled") == before


def test_a_changed_file_is_replaced_not_rewritten_through_its_links(scratch_repo, tmp_path):
    """A hard link elsewhere (a snapshot, `cp -al`) keeps the old bytes, as with kapitan's copy."""
    compiled_file = scratch_repo / "compiled" / "dev" / "manifests" / "kustomization.yaml"
    compiled_file.write_text("edited\n")
    snapshot_link = tmp_path / "snapshot.yaml"
    os.link(compiled_file, snapshot_link)
    assert compile_step(scratch_repo, "--target", "dev").returncode == 0
    assert snapshot_link.read_text() == "edited\n"
    assert compiled_file.read_text() != "edited\n"


def test_a_compiled_folder_that_is_a_link_is_refused(scratch_repo, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (scratch_repo / "compiled").rename(elsewhere)
    (scratch_repo / "compiled").symlink_to(elsewhere)
    before = snapshot(elsewhere)
    result = compile_step(scratch_repo)
    assert result.returncode == 1
    assert "compiled: is a symbolic link" in result.stderr
    assert snapshot(elsewhere) == before


def test_a_failed_compile_changes_nothing_and_leaves_no_scratch(scratch_repo, tmp_path):
    target = scratch_repo / STAGING
    target.write_text(target.read_text() + "    scheduler:\n      replicas: three\n")
    before = read_tree(scratch_repo / "compiled")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    result = compile_step(scratch_repo, env={**os.environ, SCRATCH_ENV: str(scratch)})
    assert result.returncode == 1
    assert "parameters.airflow.scheduler.replicas: 'three' is not an integer" in result.stderr
    assert read_tree(scratch_repo / "compiled") == before
    assert list(scratch.iterdir()) == []


def test_mirror_replaces_files_by_folders_and_back(tmp_path):
    fresh, dest = tmp_path / "fresh", tmp_path / "dest"
    (fresh / "was-a-file").mkdir(parents=True)
    (fresh / "was-a-file" / "inside.yaml").write_text("a\n")
    (fresh / "was-a-folder").write_text("b\n")
    (fresh / "was-a-link").write_text("c\n")
    (dest / "was-a-folder").mkdir(parents=True)
    (dest / "was-a-folder" / "old.yaml").write_text("old\n")
    (dest / "was-a-file").write_text("old\n")
    outside = tmp_path / "outside.yaml"
    outside.write_text("not ours\n")
    (dest / "was-a-link").symlink_to(outside)
    mirror(fresh, dest)
    assert read_tree(dest) == read_tree(fresh)
    assert not (dest / "was-a-link").is_symlink()
    assert outside.read_text() == "not ours\n"


def test_a_stopped_compile_stops_kapitan_and_removes_its_scratch(scratch_repo, tmp_path):
    import signal
    import time

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=scratch_repo, check=True)
    process = start_group([CLI, "compile"], cwd=scratch_repo, env={**os.environ, SCRATCH_ENV: str(scratch)},
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        # Stopped once kapitan is writing: its own temporary directory exists inside the scratch.
        while not any(scratch.glob("*/*.kapitan")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)  # the CLI alone: stopping kapitan (its own group) is its job
        _, stderr = process.communicate(timeout=60)
    finally:
        stop_groups([process])
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    assert list(scratch.iterdir()) == []


def test_the_cli_lists_every_subcommand_it_builds_alone():
    """main() builds only the subcommand being run (sync-dags' start-up); COMMANDS must name them all."""
    from airflow_gitops import cli

    subcommands = next(a for a in cli.build_parser()._actions if isinstance(a, __import__("argparse")._SubParsersAction))
    assert tuple(subcommands.choices) == cli.COMMANDS
    for name in cli.COMMANDS:
        assert tuple(next(a for a in cli.build_parser(name)._actions
                          if isinstance(a, __import__("argparse")._SubParsersAction)).choices) == (name,)
