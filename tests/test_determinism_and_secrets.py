"""Same inventory, same bytes; no secret value anywhere in Git."""

from __future__ import annotations

import json

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ENVIRONMENTS, REPO, compile_in, copy_repo, inventory_of, read_tree

TAG = re.compile(r"\?\{base64:targets/(?P<env>[a-z0-9-]+)/(?P<name>[a-z_]+):[0-9a-f]{8}\}")


def test_two_compiles_are_byte_identical(fresh_repo, tmp_path):
    again = copy_repo(tmp_path / "again")
    shutil.rmtree(again / "compiled")
    shutil.rmtree(again / "kapitan" / "refs")
    shutil.copytree(fresh_repo / "kapitan" / "refs", again / "kapitan" / "refs")
    assert compile_in(again).returncode == 0
    assert read_tree(again / "compiled") == read_tree(fresh_repo / "compiled")


def test_committed_compiled_tree_is_what_a_fresh_compile_gives(fresh_repo):
    committed = read_tree(REPO / "compiled")
    fresh = read_tree(fresh_repo / "compiled")
    stale = sorted(set(committed) ^ set(fresh) | {k for k in committed.keys() & fresh.keys() if committed[k] != fresh[k]})
    assert not stale, f"compiled/ is stale, run `make compile` and commit: {stale[:10]}"


def test_compile_never_rotates_committed_refs(fresh_repo):
    assert read_tree(fresh_repo / "kapitan" / "refs") == read_tree(REPO / "kapitan" / "refs")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_literal_value_in_any_secret(env, manifests):
    for name, obj in manifests(env).items():
        if obj["kind"] != "Secret":
            continue
        assert "data" not in obj, name
        for key, value in obj["stringData"].items():
            # One ref tag and nothing else (a Fernet key's base64 padding at most).
            assert TAG.fullmatch(value.removesuffix("=")), f"{name}: {key} holds a literal value: {value}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_ref_tag_points_at_a_committed_ref_of_its_own_environment(env, fresh_repo):
    text = "".join(p.read_text() for p in (fresh_repo / "compiled" / env).rglob("*.yaml"))
    tags = list(TAG.finditer(text))
    # External Secrets environments hold no tag at all; the others hold nothing else.
    uses_refs = inventory_of(fresh_repo, env)["airflow"]["secrets"]["mode"] == "kapitan-refs"
    assert bool(tags) == uses_refs
    for tag in tags:
        assert tag["env"] == env
        assert (REPO / "kapitan" / "refs" / "targets" / env / tag["name"]).is_file(), tag.group(0)


def test_shared_secrets_are_identical_in_every_component(manifests):
    """Every Airflow container that reads one of the three shared secrets reads it from the same
    Secret, as a file (which ones each reads: test_production_review)."""
    objects = manifests("prod")
    commands, sources, airflow_containers = set(), set(), 0
    for obj in objects.values():
        if obj["kind"] not in ("Deployment", "Job"):
            continue
        pod = obj["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"] + pod.get("initContainers", []):
            env = {v["name"]: v for v in container.get("env", [])}
            assert not any("valueFrom" in v for v in env.values()), (obj["metadata"]["name"], container["name"])
            shared = [name for name in ("AIRFLOW__CORE__FERNET_KEY_CMD", "AIRFLOW__API_AUTH__JWT_SECRET_CMD", "AIRFLOW__API__SECRET_KEY_CMD")
                      if name in env]
            if not shared:
                continue
            airflow_containers += 1
            for name in shared:
                commands.add((name, env[name]["value"]))
            mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/opt/airflow/secrets")
            sources |= {json.dumps(s["secret"]["name"]) for s in volumes[mount["name"]]["projected"]["sources"]
                        if any(i["path"] in ("fernet-key", "jwt-secret", "api-secret-key") for i in s["secret"]["items"])}
    assert airflow_containers >= 4
    assert commands == {("AIRFLOW__CORE__FERNET_KEY_CMD", "cat /opt/airflow/secrets/fernet-key"),
                        ("AIRFLOW__API_AUTH__JWT_SECRET_CMD", "cat /opt/airflow/secrets/jwt-secret"),
                        ("AIRFLOW__API__SECRET_KEY_CMD", "cat /opt/airflow/secrets/api-secret-key")}
    assert sources == {'"airflow-secrets"'}


def test_committed_refs_are_references_not_plaintext_values():
    for ref in (REPO / "kapitan" / "refs").rglob("*"):
        if ref.is_file():
            text = ref.read_text()
            assert "type: base64" in text and "data:" in text, ref


def test_a_new_environment_gets_its_own_refs_once(scratch_repo):
    target = scratch_repo / "inventory" / "targets" / "qa.yml"
    target.write_text((scratch_repo / "inventory" / "targets" / "dev.yml").read_text())
    # `make compile`'s step: a new environment's refs are written and read in one go.
    cli = subprocess.run([str(Path(sys.executable).with_name("airflow-gitops")), "compile", "--target", "qa"],
                         cwd=scratch_repo, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    refs = read_tree(scratch_repo / "kapitan" / "refs" / "targets" / "qa")
    assert {"fernet_key", "api_secret_key", "jwt_secret", "admin_password", "postgres_password"} <= set(refs)
    first = read_tree(scratch_repo / "compiled" / "qa")
    # Later compiles, plain kapitan ones too, keep the refs and give the same bytes.
    assert compile_in(scratch_repo, "-t", "qa").returncode == 0
    assert read_tree(scratch_repo / "kapitan" / "refs" / "targets" / "qa") == refs
    assert read_tree(scratch_repo / "compiled" / "qa") == first


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_revealed_fernet_key_is_a_valid_fernet_key(env, fresh_repo):
    import subprocess
    import sys

    import yaml
    from cryptography.fernet import Fernet

    kapitan = str(Path(sys.executable).with_name("kapitan"))
    manifest = REPO / "compiled" / env / "manifests" / "base" / "secret-airflow-secrets.yaml"
    if inventory_of(fresh_repo, env)["airflow"]["secrets"]["mode"] != "kapitan-refs":
        assert not manifest.exists()  # the External Secrets Operator writes it in the cluster
        return
    revealed = subprocess.run([kapitan, "refs", "--reveal", "-f", str(manifest)], cwd=REPO, capture_output=True, text=True, check=True)
    data = yaml.safe_load(revealed.stdout)["stringData"]
    token = Fernet(data["fernet-key"].encode()).encrypt(b"connection")
    assert Fernet(data["fernet-key"].encode()).decrypt(token) == b"connection"
    # HS512 keys: at least the hash's 64 bytes (PyJWT warns below).
    assert len(data["jwt-secret"]) == 86 and len(data["api-secret-key"]) == 86


def test_readme_example_environment_compiles_from_a_short_target(scratch_repo):
    readme = (REPO / "README.md").read_text()
    example = readme.split("# inventory/targets/qa.yml\n", 1)[1].split("```", 1)[0]
    meaningful = [line for line in example.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(meaningful) <= 25
    (scratch_repo / "inventory" / "targets" / "qa.yml").write_text(example)
    result = compile_in(scratch_repo, "-t", "qa")
    assert result.returncode == 0, result.stdout[-2000:]
    objects = {p.name for p in (scratch_repo / "compiled" / "qa" / "manifests").rglob("*.yaml")}
    assert "namespace-airflow-qa.yaml" in objects and "role-airflow-scheduler.yaml" in objects


def test_no_helm_hook_anywhere_in_compiled(fresh_repo):
    for path in (fresh_repo / "compiled").rglob("*.yaml"):
        assert "helm.sh/hook" not in path.read_text(), path
