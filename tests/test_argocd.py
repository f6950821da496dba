"""Argo CD delivery: an Application per environment, the bootstrap (AppProjects, app-of-apps,
kapitan-refs plugin), validated against the fields Argo CD requires, and the plugin's reveal
script run for real on an environment's manifests."""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from airflow_gitops.validate.kustomize_build import kubectl
from conftest import ENVIRONMENTS, REPO, inventory_of, validate_object

KUBECTL = kubectl()

SCHEMA = json.loads((REPO / "kapitan" / "schemas" / "crds" / "argocd.schema.json").read_text())


def argocd_files(root: Path, target: str) -> dict[str, dict]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted((root / "compiled" / target / "argocd").glob("*.yaml"))}


def all_manifest_objects(root: Path, env: str) -> list[dict]:
    return [o for p in sorted((root / "compiled" / env / "manifests").rglob("*.yaml")) if p.name != "kustomization.yaml"
            for o in [yaml.safe_load(p.read_text())]]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_argocd_environment_has_an_application_for_its_manifests(env, fresh_repo):
    params = inventory_of(fresh_repo, env)["airflow"]
    app = argocd_files(fresh_repo, env)[f"application-airflow-{env}.yaml"]
    jsonschema.validate(app, SCHEMA)
    spec = app["spec"]
    # Kapitan ref tags are revealed by the plugin; ExternalSecrets need no plugin (kustomize).
    plugin = {"plugin": {"name": "kapitan-refs-v1"}} if params["secrets"]["mode"] == "kapitan-refs" else {}
    assert spec["source"] == {
        "repoURL": params["gitops"]["repo_url"], "targetRevision": params["gitops"]["revision"],
        "path": f"compiled/{env}/manifests", **plugin,
    }
    assert spec["destination"]["namespace"] == params["namespace"]
    assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert (fresh_repo / spec["source"]["path"] / "kustomization.yaml").is_file()


def test_bootstrap_objects_validate_and_the_app_of_apps_finds_every_application(fresh_repo):
    files = argocd_files(fresh_repo, "bootstrap")
    kustomization = files.pop("kustomization.yaml")
    # One `kubectl apply -k` applies everything, the repo-server sidecar included.
    assert sorted(kustomization["resources"]) == sorted(files)
    sidecar = files.pop("deployment-argocd-repo-server.yaml")
    for name, obj in files.items():
        if obj["kind"] == "ConfigMap":
            jsonschema.validate(yaml.safe_load(obj["data"]["plugin.yaml"]), SCHEMA)
        else:
            jsonschema.validate(obj, SCHEMA)
    root = files["application-airflow-bootstrap.yaml"]["spec"]
    include, exclude = root["source"]["directory"]["include"], root["source"]["directory"]["exclude"]
    apps = [str(p.relative_to(fresh_repo / root["source"]["path"])) for p in (fresh_repo / "compiled").rglob("*.yaml")]
    assert sorted(a for a in apps if fnmatch.fnmatch(a, include) and not fnmatch.fnmatch(a, exclude)) == [f"{e}/argocd/application-airflow-{e}.yaml" for e in sorted(ENVIRONMENTS)]
    # Only what we add: every other field stays with whoever installed Argo CD.
    assert set(sidecar["spec"]) == {"template"} and set(sidecar["spec"]["template"]["spec"]) == {"containers", "volumes"}


# The parts of Argo CD's own argocd-repo-server Deployment the sidecar relies on (the shared
# var-files and plugins volumes), as Argo CD's install manifests define them.
ARGOCD_REPO_SERVER = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "argocd-repo-server", "namespace": "argocd"},
    "spec": {
        "selector": {"matchLabels": {"app.kubernetes.io/name": "argocd-repo-server"}},
        "template": {
            "metadata": {"labels": {"app.kubernetes.io/name": "argocd-repo-server"}},
            "spec": {
                "serviceAccountName": "argocd-repo-server",
                "containers": [{
                    "name": "argocd-repo-server", "image": "quay.io/argoproj/argocd:v3.1.0",
                    "args": ["/usr/local/bin/argocd-repo-server"],
                    "volumeMounts": [{"name": "var-files", "mountPath": "/var/run/argocd"},
                                     {"name": "plugins", "mountPath": "/home/argocd/cmp-server/plugins"}],
                }],
                "volumes": [{"name": "var-files", "emptyDir": {}}, {"name": "plugins", "emptyDir": {}}],
            },
        },
    },
}


def test_the_repo_server_sidecar_merges_into_argocds_own_deployment(fresh_repo, tmp_path):
    """The sidecar file merged by name into the installed Deployment (what server-side apply does
    with lists keyed by name; kustomize's strategic merge does the same offline) is a valid
    Deployment whose plugin container mounts only volumes that exist."""
    (tmp_path / "argocd-repo-server.yaml").write_text(yaml.safe_dump(ARGOCD_REPO_SERVER))
    shutil.copy(fresh_repo / "compiled" / "bootstrap" / "argocd" / "deployment-argocd-repo-server.yaml", tmp_path / "sidecar.yaml")
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(
        {"resources": ["argocd-repo-server.yaml"], "patches": [{"path": "sidecar.yaml"}]}))
    built = subprocess.run([KUBECTL, "kustomize", str(tmp_path)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    merged = yaml.safe_load(built.stdout)
    validate_object(merged, "1.33")
    pod = merged["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert sorted(containers) == ["argocd-repo-server", "kapitan-refs"]
    assert containers["argocd-repo-server"] == ARGOCD_REPO_SERVER["spec"]["template"]["spec"]["containers"][0]
    plugin = containers["kapitan-refs"]
    assert plugin["command"] == ["/var/run/argocd/argocd-cmp-server"]
    assert {"name": "argocd-cmp-kapitan-refs", "mountPath": "/home/argocd/cmp-server/config/plugin.yaml",
            "subPath": "plugin.yaml"} in plugin["volumeMounts"]
    volumes = {v["name"] for v in pod["volumes"]}
    assert {m["name"] for m in plugin["volumeMounts"]} <= volumes
    assert {"var-files", "plugins"} <= volumes


def test_the_project_allows_exactly_this_repo_the_environment_namespaces_and_our_kinds(fresh_repo):
    project = argocd_files(fresh_repo, "bootstrap")["appproject-airflow.yaml"]["spec"]
    params = {env: inventory_of(fresh_repo, env)["airflow"] for env in ENVIRONMENTS}
    assert project["sourceRepos"] == sorted({p["gitops"]["repo_url"] for p in params.values()})
    assert sorted(d["namespace"] for d in project["destinations"]) == sorted(p["namespace"] for p in params.values())
    allowed = {(k["group"], k["kind"]) for k in project["namespaceResourceWhitelist"] + project["clusterResourceWhitelist"]}
    for env in ENVIRONMENTS:
        for obj in all_manifest_objects(fresh_repo, env):
            group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
            assert (group, obj["kind"]) in allowed, (env, obj["kind"])


def test_a_wrong_application_fails_the_argocd_schema():
    bad = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "x", "namespace": "argocd"},
           "spec": {"project": "airflow", "source": {"repoURL": "https://e/x.git", "path": "p"},
                    "destination": {"namespace": "airflow-x"}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)


def test_plugin_reveals_every_secret_and_emits_only_kubernetes_objects(fresh_repo, tmp_path):
    """Runs the plugin's own generate script the way the argocd-repo-server sidecar does."""
    plugin = yaml.safe_load(argocd_files(fresh_repo, "bootstrap")["configmap-argocd-cmp-kapitan-refs.yaml"]["data"]["plugin.yaml"])
    checkout = tmp_path / "checkout"
    shutil.copytree(fresh_repo / "compiled" / "dev", checkout / "compiled" / "dev")
    shutil.copytree(REPO / "kapitan" / "refs", checkout / "kapitan" / "refs")
    generate = plugin["spec"]["generate"]
    env = {**os.environ, "ARGOCD_APP_SOURCE_PATH": "compiled/dev/manifests",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run([*generate["command"], *generate["args"]], cwd=checkout / "compiled" / "dev" / "manifests",
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    objects = [o for o in yaml.safe_load_all(result.stdout) if o]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objects) == sorted(
        (o["kind"], o["metadata"]["name"]) for o in all_manifest_objects(fresh_repo, "dev"))
    secrets = [o for o in objects if o["kind"] == "Secret"]
    assert secrets and all("?{" not in v for s in secrets for v in s["stringData"].values())
