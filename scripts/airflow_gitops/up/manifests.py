"""What `up` reads of an environment: the objects of compiled/<env>/manifests, and the data its pods
would find in their Secrets and ConfigMaps.

Secrets hold Kapitan ref tags, revealed here as Argo CD's plugin reveals them at apply time
(`kapitan refs --reveal`), never written back. An External Secrets environment has no secret data
in Git: its ExternalSecrets name store keys, whose values come from a local YAML file the user
points at (`store key: value`), standing in for the store. Secrets created outside Git (an external
database's, a deploy key) come from the same file, under `secrets: {name: {key: value}}`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import AirflowGitopsError
from ..kapitan_runner import kapitan_environment, kapitan_executable

GROUPS = ("base", "migrations", "workloads")


class ManifestError(AirflowGitopsError):
    """compiled/<env> cannot be run as it is: not compiled, or a secret value is missing."""


@dataclass(frozen=True)
class EnvironmentManifests:
    environment: str
    # file name -> object, in apply order (base, migrations, workloads)
    objects: dict[str, dict]
    secrets: dict[str, dict[str, str]]
    config_maps: dict[str, dict[str, str]]
    # file name -> the directory it is applied from: base, migrations or workloads
    groups: dict[str, str]

    def of_kind(self, kind: str) -> dict[str, dict]:
        return {name: obj for name, obj in self.objects.items() if obj.get("kind") == kind}


def manifest_paths(root: Path, environment: str) -> dict[str, Path]:
    """file name -> path of every object of compiled/<env>/manifests, base first."""
    manifests = root / "compiled" / environment / "manifests"
    if not manifests.is_dir():
        raise ManifestError(f"compiled/{environment}/manifests does not exist: compile first (make compile), "
                            f"or check the environment's name (inventory/targets/{environment}.yml)")
    paths = {}
    for group in GROUPS:
        for path in sorted((manifests / group).glob("*.yaml")):
            if path.name != "kustomization.yaml":
                paths[path.name] = path
    return paths


def reveal(root: Path, path: Path) -> dict[str, str]:
    """A Secret of Kapitan ref tags, revealed: its stringData."""
    result = subprocess.run([kapitan_executable(), "refs", "--reveal", "-f", str(path)], cwd=root,
                            env=kapitan_environment(), capture_output=True, text=True)
    if result.returncode != 0:
        raise ManifestError(f"kapitan refs --reveal -f {path.relative_to(root)} failed: {result.stderr.strip()[-500:]}")
    revealed = yaml.safe_load(result.stdout) or {}
    return {k: str(v) for k, v in (revealed.get("stringData") or revealed.get("data") or {}).items()}


def _external_secret_data(obj: Mapping, store: Mapping[str, object]) -> tuple[str, dict[str, str], list[str]]:
    """The Secret an ExternalSecret would write, from the local stand-in for the store, and the
    store keys the stand-in lacks."""
    data, missing = {}, []
    for item in obj["spec"].get("data", []):
        key = item["remoteRef"]["key"]
        if key in store:
            data[item["secretKey"]] = str(store[key])
        else:
            missing.append(key)
    return obj["spec"]["target"]["name"], data, missing


def load(root: Path, environment: str, secrets_file: Path | None = None) -> EnvironmentManifests:
    """The environment's objects with the data of its Secrets and ConfigMaps."""
    paths = manifest_paths(root, environment)
    objects = {name: yaml.safe_load(path.read_text()) for name, path in paths.items()}
    local: dict = {}
    if secrets_file is not None:
        try:
            local = yaml.safe_load(secrets_file.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ManifestError(f"{secrets_file}: cannot read it as YAML ({error})") from None
        if not isinstance(local, dict):
            raise ManifestError(f"{secrets_file}: expected a mapping of store keys (and `secrets:`) to values")
    existing = {name: {k: str(v) for k, v in data.items()} for name, data in (local.get("secrets") or {}).items()}
    store = {k: v for k, v in local.items() if k != "secrets"}
    secrets: dict[str, dict[str, str]] = dict(existing)
    missing: list[str] = []
    for name, obj in objects.items():
        if obj.get("kind") == "Secret":
            secrets[obj["metadata"]["name"]] = reveal(root, paths[name])
        elif obj.get("kind") == "ExternalSecret":
            if secrets_file is None:
                raise ManifestError(f"{environment} takes its secrets from an External Secrets store: give their values "
                                    "in a local YAML file (--secrets-file), `store key: value` per line")
            target, data, lacking = _external_secret_data(obj, store)
            secrets[target] = data
            missing += lacking
    if missing:
        raise ManifestError(f"{environment}: {secrets_file} has no value for the store key{'s' if len(missing) > 1 else ''} "
                            f"{', '.join(sorted(missing))}; add a `KEY: value` line for each")
    config_maps = {obj["metadata"]["name"]: {k: str(v) for k, v in (obj.get("data") or {}).items()}
                   for obj in objects.values() if obj.get("kind") == "ConfigMap"}
    groups = {name: path.parent.name for name, path in paths.items()}
    return EnvironmentManifests(environment, objects, secrets, config_maps, groups)
