"""`make compile` compiles only the environments whose inputs changed, and leaves exactly the
bytes of a full compile: each kind of input is changed in a scratch repository, the compile names
what it compiled, and compiled/ is compared with a full compile of the same inventory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_gitops import compile_inputs
from airflow_gitops.kapitan_runner import copy_compile_inputs, fresh_compile
from conftest import copy_repo, read_tree

CLI = str(Path(sys.executable).with_name("airflow-gitops"))
# Its own cache: the record of the last compile is per checkout.
ENV = {k: v for k, v in os.environ.items() if k != "AIRFLOW_GITOPS_CACHE"}
EVERY = ("bootstrap", "dev", "prod", "staging")


def compile_cli(root: Path, *args: str) -> str:
    result = subprocess.run([CLI, "compile", *args], cwd=root, capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def compiled_names(output: str) -> set[str]:
    if output.startswith("compiled/ is up to date"):
        return set()
    what = output.removeprefix("compiled ").split(" (")[0].split(" into ")[0]
    return set(EVERY) if what == "every environment" else set(what.split(", "))


def full_compile(root: Path, tmp: Path) -> dict[str, bytes]:
    """compiled/ as a full compile of the same inputs gives it, in a copy (refs included)."""
    work = tmp / "full"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    copy_compile_inputs(root, work)
    with fresh_compile(work) as fresh:
        return read_tree(fresh.tree)


def fresh_copy(root: Path) -> Path:
    copy_repo(root)
    assert compiled_names(compile_cli(root)) == set(EVERY)  # no record yet: everything
    assert compile_cli(root).startswith("compiled/ is up to date")
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return fresh_copy(tmp_path / "repo")


@pytest.fixture(scope="module")
def shared_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy for the cases in turn: each starts where the last compile left everything up to date."""
    return fresh_copy(tmp_path_factory.mktemp("incremental") / "repo")


def edit(path: str, old: str, new: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        text = (root / path).read_text()
        assert old in text, f"{path}: no {old!r}"
        (root / path).write_text(text.replace(old, new, 1))
    return change


def append(path: str, text: str) -> Callable[[Path], None]:
    return lambda root: (root / path).write_text((root / path).read_text() + text)


def remove(path: str) -> Callable[[Path], None]:
    return lambda root: shutil.rmtree(root / path) if (root / path).is_dir() else (root / path).unlink()


CASES = {
    "target file": (edit("inventory/targets/dev.yml", "ref: main", "ref: develop"), {"dev", "bootstrap"}),
    "class the target lists": (edit("inventory/classes/profiles/staging.yml", "profile: staging",
                                    "profile: staging\n    labels: {team: data}"), {"staging", "bootstrap"}),
    "class a class lists": (append("inventory/classes/airflow/placement/spread.yml", "# changed\n"), {"prod", "bootstrap"}),
    "class every target uses": (edit("inventory/classes/airflow/defaults.yml", "parallelism: 32", "parallelism: 30"), set(EVERY)),
    "component": (append("components/environment.jsonnet", "\n"), set(EVERY)),
    "library": (append("kapitan/lib/k8s.libsonnet", "\n// changed\n"), set(EVERY)),
    "schema": (edit("kapitan/schemas/airflow.schema.json", '"title": "Airflow GitOps inventory: parameters.airflow"',
                    '"title": "Airflow GitOps inventory: parameters.airflow."'), set(EVERY)),
    "refs of one environment": (remove("kapitan/refs/targets/dev/jwt_secret"), {"dev"}),
    ".kapitan": (append(".kapitan", "# changed\n"), set(EVERY)),
    "compiled file edited by hand": (append("compiled/prod/manifests/base/configmap-airflow-config.yaml", "# hand\n"), {"prod"}),
    "compiled folder deleted": (remove("compiled/staging"), {"staging"}),
    "folder added by hand": (lambda root: (root / "compiled/dev/manifests/notes").mkdir(), {"dev"}),
    "target added": (lambda root: shutil.copy(root / "inventory/targets/staging.yml", root / "inventory/targets/qa.yml"),
                     {"qa", "bootstrap"}),
}


@pytest.mark.parametrize("case", CASES)
def test_a_changed_input_compiles_its_environments_to_the_bytes_of_a_full_compile(shared_repo: Path, tmp_path: Path,
                                                                                   case: str) -> None:
    change, expected = CASES[case]
    change(shared_repo)
    assert compiled_names(compile_cli(shared_repo)) == expected
    assert read_tree(shared_repo / "compiled") == full_compile(shared_repo, tmp_path)
    assert compile_cli(shared_repo).startswith("compiled/ is up to date")


def test_a_removed_target_loses_its_folder_as_with_a_full_compile(repo: Path, tmp_path: Path) -> None:
    (repo / "inventory/targets/staging.yml").unlink()
    compile_cli(repo)
    assert not (repo / "compiled/staging").exists()
    assert read_tree(repo / "compiled") == full_compile(repo, tmp_path)


def test_all_compiles_every_environment(repo: Path) -> None:
    assert compiled_names(compile_cli(repo, "--all")) == set(EVERY)


def test_tool_versions_are_inputs_of_every_environment(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = compile_inputs.input_digests(repo)
    monkeypatch.setattr(compile_inputs, "_tool_versions", lambda: b"kapitan=0.99.0")
    after = compile_inputs.input_digests(repo)
    assert before.keys() == after.keys() == set(EVERY)
    assert all(before[t] != after[t] for t in EVERY)


def test_an_untraceable_class_falls_back_to_a_full_compile(repo: Path) -> None:
    edit("inventory/targets/dev.yml", "  - profiles.dev", "  - profiles.dev\n  - .relative")(repo)
    with pytest.raises(compile_inputs.Untraceable):
        compile_inputs.input_digests(repo)
