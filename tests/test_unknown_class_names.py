"""A class a target (or one of its classes) names that does not exist: `airflow-gitops compile` and
`validate` name the target file, where the name is listed, and the class it probably meant."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from airflow_gitops.errors import CompileError
from airflow_gitops.kapitan_runner import compile_targets
from airflow_gitops.validate import inventory_schema
from airflow_gitops.validate.runner import context_for

CLI = str(Path(sys.executable).with_name("airflow-gitops"))


def rename_class(root: Path, file: str, old: str, new: str) -> None:
    path = root / file
    text = path.read_text()
    assert f"  - {old}\n" in text
    path.write_text(text.replace(f"  - {old}\n", f"  - {new}\n"))


def test_compile_suggests_the_class_a_misspelt_name_meant(scratch_repo):
    subprocess.run(["git", "init", "-q"], cwd=scratch_repo, check=True)
    rename_class(scratch_repo, "inventory/targets/dev.yml", "airflow.executor.local", "airflow.executor.kubernetess")
    result = subprocess.run([CLI, "compile"], cwd=scratch_repo, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: inventory/targets/dev.yml: Class airflow.executor.kubernetess not found "
                                     "(did you mean airflow.executor.kubernetes?)")


def test_validate_suggests_the_class_a_misspelt_name_meant(scratch_repo):
    rename_class(scratch_repo, "inventory/targets/staging.yml", "profiles.staging", "profile.staging")
    outcome = inventory_schema.run(context_for(scratch_repo, ["staging"]))["staging"]
    assert outcome.reasons == ["inventory/targets/staging.yml: Class profile.staging not found "
                               "(did you mean profiles.staging?)"]


def test_a_missing_class_listed_by_a_class_names_that_class_file_too(scratch_repo):
    # The target includes a class of its own, which lists the misspelt name.
    (scratch_repo / "inventory" / "classes" / "team").mkdir()
    (scratch_repo / "inventory" / "classes" / "team" / "logs.yml").write_text("classes:\n  - airflow.log.pvc\n")
    rename_class(scratch_repo, "inventory/targets/staging.yml", "airflow.logs.pvc", "team.logs")
    with pytest.raises(CompileError) as error:
        compile_targets(scratch_repo, ["staging"])
    assert str(error.value) == ("inventory/targets/staging.yml: Class airflow.log.pvc not found (listed in "
                                "inventory/classes/team/logs.yml; did you mean airflow.logs.pvc?)")


def test_a_class_name_like_no_other_says_how_classes_are_named(scratch_repo):
    rename_class(scratch_repo, "inventory/targets/dev.yml", "airflow.executor.local", "zzz")
    with pytest.raises(CompileError) as error:
        compile_targets(scratch_repo, ["dev"])
    assert str(error.value) == ("inventory/targets/dev.yml: Class zzz not found (no inventory/classes/zzz.yml; a class "
                                "is named by its file's path under inventory/classes/, dots for slashes, without .yml: "
                                "airflow.executor.local is inventory/classes/airflow/executor/local.yml)")
