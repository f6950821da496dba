"""Shared fixtures: real compiles in temporary copies of the repository."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("dev", "staging", "prod")
# What a compile reads; compiled/ is copied too so "untouched on failure" can be checked.
COPIED = (".kapitan", "inventory", "components", "kapitan", "compiled")
KAPITAN = str(Path(sys.executable).with_name("kapitan"))


def copy_repo(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name)
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def kapitan(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KAPITAN, *args], cwd=root, capture_output=True, text=True)


def compile_in(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = kapitan(root, "compile", *args)
    return result


def read_tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# compiled/<env>/manifests/<group>/<kind>-<name>.yaml, applied in this order (one Flux
# Kustomization each); compiled/<env>/manifests/kustomization.yaml lists the three directories.
MANIFEST_GROUPS = ("base", "migrations", "workloads")


def manifest_files(compiled: Path, env: str) -> dict[str, Path]:
    """file name -> path of every object of compiled/<env>/manifests (kustomization.yaml files excluded)."""
    paths = [p for p in sorted((compiled / env / "manifests").rglob("*.yaml")) if p.name != "kustomization.yaml"]
    files = {p.name: p for p in paths}
    assert len(files) == len(paths), f"a file name occurs in two directories of compiled/{env}/manifests"
    return files


def load_manifests(compiled: Path, env: str) -> dict[str, dict]:
    """file name -> object, for compiled/<env>/manifests and its group directories."""
    return {name: yaml.safe_load(path.read_text()) for name, path in manifest_files(compiled, env).items()}


@pytest.fixture(scope="session")
def fresh_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository compiled from scratch (compiled/ removed first)."""
    root = copy_repo(tmp_path_factory.mktemp("fresh"))
    shutil.rmtree(root / "compiled", ignore_errors=True)
    result = compile_in(root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def manifest_reader(compiled: Path) -> Callable[[str], dict[str, dict]]:
    """env -> its objects (load_manifests), each environment read once."""
    cache: dict[str, dict[str, dict]] = {}

    def get(env: str) -> dict[str, dict]:
        if env not in cache:
            cache[env] = load_manifests(compiled, env)
        return cache[env]

    return get


@pytest.fixture(scope="session")
def manifests(fresh_repo: Path) -> Callable[[str], dict[str, dict]]:
    return manifest_reader(fresh_repo / "compiled")


@pytest.fixture
def scratch_repo(tmp_path: Path) -> Iterator[Path]:
    yield copy_repo(tmp_path / "repo")


def validate_object(obj: dict, kubernetes_version: str) -> None:
    """Strict Kubernetes schema validation; custom resources against our schemas of them (the
    validate command's own check)."""
    from airflow_gitops.validate.kubernetes_schemas import problems_of

    problems = problems_of(obj, REPO, kubernetes_version)
    assert not problems, f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}: {problems}"


def secret_file(root: Path, env: str, name: str) -> str:
    """The file of a shared Secret: a Secret, or the ExternalSecret that writes it."""
    mode = inventory_of(root, env)["airflow"]["secrets"]["mode"]
    return f"{'externalsecret' if mode == 'external-secrets' else 'secret'}-{name}.yaml"


def inventory_of(root: Path, env: str) -> dict:
    result = kapitan(root, "inventory", "-t", env)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["parameters"]
