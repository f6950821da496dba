"""Flux delivers an environment: with the class gitops.flux, compiled/<env>/flux holds a GitRepository
and three Kustomizations (base -> migrations -> workloads), each pointing at a directory of
compiled/<env>/manifests that kustomize builds on its own."""

from __future__ import annotations

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
from conftest import ENVIRONMENTS, MANIFEST_GROUPS, REPO, compile_in, copy_repo, load_manifests, read_tree

KUBECTL = kubectl()
SCHEMA = json.loads((REPO / "kapitan" / "schemas" / "crds" / "flux.schema.json").read_text())
# What holds data stays when it leaves Git and when the environment is removed.
KEPT = {"kustomize.toolkit.fluxcd.io/prune": "disabled", "argocd.argoproj.io/sync-options": "Prune=false,Delete=false"}


def switch_to_flux(root: Path, env: str, extra: str = "") -> None:
    """Adds the class gitops.flux last (after airflow.defaults, whose engine it overrides)."""
    target = root / "inventory" / "targets" / f"{env}.yml"
    text = target.read_text()
    # Flux cannot reveal Kapitan refs: a Flux environment takes its secrets from External Secrets.
    classes = "  - gitops.flux\n" + ("" if "  - secrets.external-secrets\n" in text else "  - secrets.external-secrets\n")
    text = text.replace(f"  - profiles.{env}\n", f"  - profiles.{env}\n{classes}", 1)
    assert "gitops.flux" in text
    target.write_text(text + extra)


def flux_objects(root: Path, env: str) -> dict[str, dict]:
    """The Flux objects of compiled/<env>/flux (or compiled/bootstrap/flux), without kustomization.yaml."""
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted((root / "compiled" / env / "flux").glob("*.yaml"))
            if p.name != "kustomization.yaml"}


def kustomize(directory: Path) -> list[dict]:
    built = subprocess.run([KUBECTL, "kustomize", str(directory)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    return [o for o in yaml.safe_load_all(built.stdout) if o]


@pytest.fixture(scope="module")
def flux_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy with staging and dev (bundled database) on Flux, prod left on Argo CD."""
    root = copy_repo(tmp_path_factory.mktemp("flux"))
    switch_to_flux(root, "staging")
    switch_to_flux(root, "dev")
    result = compile_in(root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def test_committed_environments_stay_on_argocd():
    for env in ENVIRONMENTS:
        assert "gitops.flux" not in (REPO / "inventory" / "targets" / f"{env}.yml").read_text()
        flux = REPO / "compiled" / env / "flux"
        assert not flux.exists() or not any(flux.iterdir())
    assert not (REPO / "compiled" / "bootstrap" / "flux").exists()


def test_only_flux_environments_get_flux_objects(flux_repo):
    assert sorted(flux_objects(flux_repo, "staging")) == [
        "gitrepository-airflow-staging.yaml",
        "kustomization-airflow-staging-base.yaml",
        "kustomization-airflow-staging-migrations.yaml",
        "kustomization-airflow-staging-workloads.yaml",
    ]
    assert flux_objects(flux_repo, "prod") == {}


def test_git_repository_reads_this_repository_at_the_revision(flux_repo):
    repo = flux_objects(flux_repo, "staging")["gitrepository-airflow-staging.yaml"]
    assert repo["apiVersion"] == "source.toolkit.fluxcd.io/v1"
    assert repo["metadata"]["namespace"] == "flux-system"
    assert repo["spec"] == {"interval": "5m", "url": "https://git.acme.internal/platform/airflow-gitops.git",
                            "ref": {"branch": "main"}}


def test_secret_ref_and_scp_style_url(tmp_path):
    root = copy_repo(tmp_path / "repo")
    switch_to_flux(root, "staging", "    gitops:\n      repo_url: git@git.acme.internal:platform/airflow-gitops.git\n"
                                    "      revision: release\n      flux:\n        secret_ref: flux-git-auth\n")
    result = compile_in(root, "-t", "staging")
    assert result.returncode == 0, result.stdout + result.stderr
    spec = flux_objects(root, "staging")["gitrepository-airflow-staging.yaml"]["spec"]
    assert spec["url"] == "ssh://git@git.acme.internal/platform/airflow-gitops.git"
    assert spec["ref"] == {"branch": "release"}
    assert spec["secretRef"] == {"name": "flux-git-auth"}
    jsonschema.validate(flux_objects(root, "staging")["gitrepository-airflow-staging.yaml"], SCHEMA)


def test_kustomizations_apply_base_then_migrations_then_workloads(flux_repo):
    objects = flux_objects(flux_repo, "staging")
    ks = {o["metadata"]["name"]: o for o in objects.values() if o["kind"] == "Kustomization"}
    base, migrations, workloads = (ks[f"airflow-staging-{g}"] for g in MANIFEST_GROUPS)
    for group, k in zip(MANIFEST_GROUPS, (base, migrations, workloads)):
        spec = k["spec"]
        assert k["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
        assert k["metadata"]["namespace"] == "flux-system"
        assert spec["path"] == f"./compiled/staging/manifests/{group}"
        assert spec["sourceRef"] == {"kind": "GitRepository", "name": "airflow-staging"}
        assert spec["prune"] is True
        assert spec["targetNamespace"] == "airflow-staging"
        assert spec["interval"] == "5m" and spec["timeout"] == "10m"
    assert "dependsOn" not in base["spec"]
    assert migrations["spec"]["dependsOn"] == [{"name": "airflow-staging-base"}]
    assert workloads["spec"]["dependsOn"] == [{"name": "airflow-staging-migrations"}]
    # Workloads start only once the migration Job succeeded.
    assert migrations["spec"]["wait"] is True
    # Its Deployments, and its Jobs (staging's users Job): health-checked, so a failing one fails the sync.
    workload_objects = [o for o in load_manifests(flux_repo / "compiled", "staging").values() if o["kind"] in ("Deployment", "Job")
                        and not o["metadata"]["name"].startswith("airflow-db-migrate-")]
    checks = workloads["spec"]["healthChecks"]
    assert {(c["kind"], c["name"]) for c in checks} == {(o["kind"], o["metadata"]["name"]) for o in workload_objects}
    assert all(c["namespace"] == "airflow-staging" for c in checks)


def test_bundled_database_is_ready_before_migrations(flux_repo):
    base = flux_objects(flux_repo, "dev")["kustomization-airflow-dev-base.yaml"]
    assert base["spec"]["healthChecks"] == [
        {"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "name": n, "namespace": "airflow-dev"}
        for n in ("airflow-admin-passwords", "airflow-metadata-db", "airflow-secrets")] + [
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "airflow-postgres", "namespace": "airflow-dev"}]
    staging = flux_objects(flux_repo, "staging")["kustomization-airflow-staging-base.yaml"]["spec"]["healthChecks"]
    assert [c["kind"] for c in staging] == ["ExternalSecret", "ExternalSecret"]


@pytest.mark.parametrize("env", ("dev", "staging"))
def test_every_workload_and_job_is_health_checked(flux_repo, env):
    """Flux waits for every Deployment, StatefulSet and Job a Kustomization applies (and every
    ExternalSecret of base): none is forgotten, whatever the features."""
    flux = flux_objects(flux_repo, env)
    manifests = flux_repo / "compiled" / env / "manifests"
    for group in MANIFEST_GROUPS:
        objects = [yaml.safe_load(p.read_text()) for p in sorted((manifests / group).glob("*.yaml")) if p.name != "kustomization.yaml"]
        expected = {(o["kind"], o["metadata"]["name"]) for o in objects
                    if o["kind"] in ("Deployment", "StatefulSet", "Job", "ExternalSecret")}
        spec = flux[f"kustomization-airflow-{env}-{group}.yaml"]["spec"]
        checked = {(c["kind"], c["name"]) for c in spec.get("healthChecks", [])}
        # The migrations Kustomization waits for everything it applies (the Job) instead.
        assert checked == expected or (group == "migrations" and spec["wait"] is True), (env, group, expected - checked)


@pytest.mark.parametrize("env", ("dev", "staging"))
def test_objects_are_grouped_in_apply_order(flux_repo, env):
    manifests = flux_repo / "compiled" / env / "manifests"
    kinds = {group: {yaml.safe_load(p.read_text())["kind"] for p in (manifests / group).glob("*.yaml")
                     if p.name != "kustomization.yaml"} for group in MANIFEST_GROUPS}
    assert kinds["migrations"] == {"Job"}
    # Airflow's own workloads, and the housekeeping CronJobs that need the migrated database.
    # and the Jobs that follow the migrations (staging: the sign-in users Job).
    assert kinds["workloads"] <= {"Deployment", "Service", "PodDisruptionBudget", "CronJob", "Job"} and "Deployment" in kinds["workloads"]
    assert {"Namespace", "ConfigMap", "ServiceAccount"} <= kinds["base"] and "ExternalSecret" in kinds["base"]
    assert not kinds["base"] & {"Job", "Deployment", "PodDisruptionBudget"}
    # Nothing but directories and kustomization.yaml at the top: Flux and Argo CD read the kustomization.
    assert sorted(p.name for p in manifests.iterdir()) == ["base", "kustomization.yaml", "migrations", "workloads"]


@pytest.mark.parametrize("env", ("dev", "staging"))
def test_every_flux_path_and_the_whole_environment_build_with_kustomize(flux_repo, env, tmp_path):
    objects = load_manifests(flux_repo / "compiled", env)
    per_path = []
    for k in flux_objects(flux_repo, env).values():
        if k["kind"] != "Kustomization":
            continue
        directory = flux_repo / k["spec"]["path"]
        built = kustomize(directory)
        assert built, directory
        per_path += built
        # What Flux does with targetNamespace: it must change no namespace (and no Namespace's name).
        overlay = tmp_path / k["metadata"]["name"]
        overlay.mkdir()
        (overlay / "kustomization.yaml").write_text(yaml.safe_dump(
            {"namespace": k["spec"]["targetNamespace"], "resources": [os.path.relpath(directory, overlay)]}))
        assert kustomize(overlay) == built
    whole = kustomize(flux_repo / "compiled" / env / "manifests")
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    assert sorted(map(key, per_path)) == sorted(map(key, whole)) == sorted(map(key, objects.values()))


def test_data_outlives_a_removal_and_nothing_else_stays_behind(flux_repo):
    """The namespace and the claims are neither pruned nor deleted with the environment (Flux
    prune disabled, Argo CD Prune=false and Delete=false); StatefulSets keep their claims when they
    go; every other object goes with the environment (no running orphan)."""
    kept = []
    for env in ENVIRONMENTS:
        for name, obj in load_manifests(flux_repo / "compiled", env).items():
            annotations = obj["metadata"].get("annotations", {})
            if obj["kind"] in ("PersistentVolumeClaim", "Namespace"):
                assert {k: annotations.get(k) for k in KEPT} == KEPT, (env, name)
                kept.append(obj["kind"])
            else:
                assert "kustomize.toolkit.fluxcd.io/prune" not in annotations, (env, name)
                assert "argocd.argoproj.io/sync-options" not in annotations, (env, name)
            if obj["kind"] == "StatefulSet" and obj["spec"].get("volumeClaimTemplates"):
                assert obj["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}, name
    assert {"PersistentVolumeClaim", "Namespace"} <= set(kept)


def test_migration_job_is_recreated_rather_than_patched(flux_repo):
    for env in ENVIRONMENTS:
        job = next(o for o in load_manifests(flux_repo / "compiled", env).values() if o["kind"] == "Job")
        assert job["metadata"]["name"].startswith("airflow-db-migrate-")
        assert job["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/force"] == "enabled"
        assert job["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"


def test_one_flux_bootstrap_brings_every_flux_environment(flux_repo):
    """`kubectl apply -k compiled/bootstrap/flux` applies every Flux environment's objects, plus a
    Kustomization that keeps applying that directory from Git (new environments on git push)."""
    bootstrap = flux_repo / "compiled" / "bootstrap" / "flux"
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    expected = [*flux_objects(flux_repo, "bootstrap").values(), *flux_objects(flux_repo, "dev").values(),
                *flux_objects(flux_repo, "staging").values()]
    assert sorted(map(key, kustomize(bootstrap))) == sorted(map(key, expected))
    objects = flux_objects(flux_repo, "bootstrap")
    source, itself = objects["gitrepository-airflow-bootstrap.yaml"], objects["kustomization-airflow-bootstrap.yaml"]
    for obj in objects.values():
        jsonschema.validate(obj, SCHEMA)
    assert source["spec"] == flux_objects(flux_repo, "staging")["gitrepository-airflow-staging.yaml"]["spec"]
    assert itself["spec"]["path"] == "./compiled/bootstrap/flux"
    assert itself["spec"]["sourceRef"] == {"kind": "GitRepository", "name": "airflow-bootstrap"}
    assert itself["spec"]["prune"] is True
    # Each environment directory is a kustomization of its own, listing exactly its objects.
    for env in ("dev", "staging"):
        listed = yaml.safe_load((flux_repo / "compiled" / env / "flux" / "kustomization.yaml").read_text())["resources"]
        assert sorted(listed) == sorted(flux_objects(flux_repo, env))
    # The Argo CD bootstrap serves only prod now.
    project = yaml.safe_load((flux_repo / "compiled" / "bootstrap" / "argocd" / "appproject-airflow.yaml").read_text())
    assert [d["namespace"] for d in project["spec"]["destinations"]] == ["airflow-prod"]


def test_with_every_environment_on_flux_there_is_no_argocd_bootstrap(tmp_path):
    root = copy_repo(tmp_path / "repo")
    for env in ENVIRONMENTS:
        switch_to_flux(root, env)
    result = compile_in(root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (root / "compiled" / "bootstrap" / "argocd").exists()
    assert sorted(p.name for p in (root / "compiled" / "bootstrap" / "flux").iterdir()) == [
        "gitrepository-airflow-bootstrap.yaml", "kustomization-airflow-bootstrap.yaml", "kustomization.yaml"]


def test_flux_environments_on_different_revisions_are_refused_naming_file_and_key(tmp_path):
    root = copy_repo(tmp_path / "repo")
    switch_to_flux(root, "staging")
    switch_to_flux(root, "prod", "    gitops:\n      revision: release\n")
    before = read_tree(root / "compiled")
    result = compile_in(root)
    assert result.returncode != 0
    assert ('inventory/targets/staging.yml: parameters.airflow.gitops.revision: "main" differs from "release" '
            "in inventory/targets/prod.yml") in result.stdout + result.stderr
    assert read_tree(root / "compiled") == before


def test_flux_objects_match_the_schema(flux_repo):
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    objects = {**flux_objects(flux_repo, "staging"), **flux_objects(flux_repo, "dev")}
    assert len(objects) == 8
    for name, obj in objects.items():
        errors = [e.message for e in jsonschema.Draft7Validator(SCHEMA).iter_errors(obj)]
        assert errors == [], name


@pytest.mark.parametrize("breakage", [
    lambda o: o["spec"].pop("sourceRef"),
    lambda o: o["spec"].update(wait="yes"),
    lambda o: o["spec"].update(path="compiled/staging/manifests/migrations"),
    lambda o: o["spec"]["dependsOn"].append({"name": "Airflow_Base"}),
    lambda o: o.update(apiVersion="kustomize.toolkit.fluxcd.io/v1beta1"),
    lambda o: o["spec"].update(interval="five minutes"),
    lambda o: o["spec"].update(depends_on=[]),
])
def test_schema_refuses_a_broken_kustomization(flux_repo, breakage):
    obj = flux_objects(flux_repo, "staging")["kustomization-airflow-staging-migrations.yaml"]
    jsonschema.validate(obj, SCHEMA)
    breakage(obj)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(obj, SCHEMA)


def test_schema_refuses_a_git_repository_with_an_scp_style_url(flux_repo):
    obj = flux_objects(flux_repo, "staging")["gitrepository-airflow-staging.yaml"]
    obj["spec"]["url"] = "git@github.com:example/airflow-gitops.git"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(obj, SCHEMA)
