"""secrets.mode: external-secrets: ExternalSecret objects instead of Secrets, no secret data in Git."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import REPO, compile_in, copy_repo

SCHEMA = json.loads((REPO / "kapitan" / "schemas" / "crds" / "external-secrets.schema.json").read_text())


@pytest.fixture(scope="module")
def eso_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_repo(tmp_path_factory.mktemp("eso"))
    for env in ("dev", "staging"):
        target = root / "inventory" / "targets" / f"{env}.yml"
        target.write_text(target.read_text().replace(f"  - profiles.{env}\n", f"  - profiles.{env}\n  - secrets.external-secrets\n"))
    result = compile_in(root)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return root


def objects(root: Path, env: str) -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted((root / "compiled" / env / "manifests").rglob("*.yaml"))
            if p.name != "kustomization.yaml"]


@pytest.mark.parametrize("env", ["dev", "staging"])
def test_external_secrets_replace_every_secret_and_carry_no_data(env, eso_repo):
    objs = objects(eso_repo, env)
    assert not [o for o in objs if o["kind"] == "Secret"]
    externals = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ExternalSecret"}
    expected = {"airflow-secrets", "airflow-admin-passwords"} | ({"airflow-metadata-db"} if env == "dev" else set())
    assert set(externals) == expected
    for name, external in externals.items():
        jsonschema.validate(external, SCHEMA)
        spec = external["spec"]
        assert spec["target"]["name"] == name and spec["secretStoreRef"] == {"name": "airflow", "kind": "ClusterSecretStore"}
        assert all(d["remoteRef"]["key"].startswith(f"airflow/{env}/") for d in spec["data"])
    # Every pod still reads the same Secret names and keys.
    keys = {name: {d["secretKey"] for d in e["spec"]["data"]} for name, e in externals.items()}
    assert keys["airflow-secrets"] == {"fernet-key", "api-secret-key", "jwt-secret"}
    assert keys["airflow-admin-passwords"] == {"admin-password"}


def test_an_environment_on_external_secrets_is_applied_without_the_reveal_plugin(eso_repo):
    app = yaml.safe_load((eso_repo / "compiled" / "staging" / "argocd" / "application-airflow-staging.yaml").read_text())
    assert "plugin" not in app["spec"]["source"] and "directory" not in app["spec"]["source"]
    refs_app = yaml.safe_load((REPO / "compiled" / "dev" / "argocd" / "application-airflow-dev.yaml").read_text())
    assert refs_app["spec"]["source"]["plugin"] == {"name": "kapitan-refs-v1"}


def test_a_wrong_external_secret_fails_the_schema(eso_repo):
    external = next(o for o in objects(eso_repo, "staging") if o["kind"] == "ExternalSecret")
    external["spec"]["secretStoreRef"]["kind"] = "Vault"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(external, SCHEMA)
