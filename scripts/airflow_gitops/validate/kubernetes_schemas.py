"""Check 3: every object against the Kubernetes version its environment declares, strictly (an
unknown field is an error); custom resources (Argo CD, Flux, External Secrets, KEDA, Prometheus
Operator, Gateway API) against our schemas of the fields those engines require."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

from .model import Context, Outcome
from .objects import load_objects

NAME = "kubernetes-schemas"
CUSTOM_RESOURCE_SCHEMAS = {
    "argoproj.io": "argocd.schema.json",
    "external-secrets.io": "external-secrets.schema.json",
    "source.toolkit.fluxcd.io": "flux.schema.json",
    "kustomize.toolkit.fluxcd.io": "flux.schema.json",
    "keda.sh": "keda.schema.json",
    "monitoring.coreos.com": "prometheus-operator.schema.json",
    "gateway.networking.k8s.io": "gateway-api.schema.json",
}
# The Argo CD bootstrap's repo-server file holds only the sidecar and its volumes, merged into
# Argo CD's own Deployment by server-side apply; these are the volumes that Deployment has.
ARGOCD_REPO_SERVER = ("argocd", "argocd-repo-server")
ARGOCD_SHARED_VOLUMES = ({"name": "var-files", "emptyDir": {}}, {"name": "plugins", "emptyDir": {}})


@cache
def _validator(root: Path, file_name: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads((root / "kapitan" / "schemas" / "crds" / file_name).read_text()))


def _leaves(errors: list[jsonschema.ValidationError]) -> list[jsonschema.ValidationError]:
    return [leaf for e in errors for leaf in (_leaves(e.context) if e.context else [e])]


def _most_specific(errors: list[jsonschema.ValidationError]) -> jsonschema.ValidationError | None:
    """One error per object: the deepest, leaving out the oneOf branches written for other kinds."""
    leaves = [e for e in _leaves(errors) if list(e.absolute_path) not in (["kind"], ["apiVersion"])] or _leaves(errors)
    return max(leaves, key=lambda e: len(e.absolute_path), default=None)


def _sidecar_as_pod(obj: dict) -> dict:
    spec = obj["spec"]["template"]["spec"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "argocd-repo-server-sidecar"},
            "spec": {**spec, "volumes": [*spec.get("volumes", []), *ARGOCD_SHARED_VOLUMES]}}


def problems_of(obj: dict, root: Path, kubernetes_version: str) -> list[str]:
    if not isinstance(obj, dict) or "apiVersion" not in obj or "kind" not in obj:
        return ["not a Kubernetes object (no apiVersion/kind)"]
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    if group in CUSTOM_RESOURCE_SCHEMAS:
        error = _most_specific(list(_validator(root, CUSTOM_RESOURCE_SCHEMAS[group]).iter_errors(obj)))
        return [] if error is None else [f"{'.'.join(map(str, error.absolute_path)) or '(object)'}: {error.message[:300]}"]
    if (obj["metadata"].get("namespace"), obj["metadata"].get("name")) == ARGOCD_REPO_SERVER:
        obj = _sidecar_as_pod(obj)
    if obj["kind"] == "ConfigMap" and "plugin.yaml" in obj.get("data", {}):
        plugin = yaml.safe_load(obj["data"]["plugin.yaml"])
        found = [f"data.plugin.yaml: {e.message}" for e in _validator(root, "argocd.schema.json").iter_errors(plugin)]
        if found:
            return found
    try:
        kubernetes_validate.validate(obj, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(map(str, error.path)) or "(object)"
        return [f"{where}: {error.message} (Kubernetes {kubernetes_version})"]
    except kubernetes_validate.utils.SchemaNotFoundError:
        return [f"no schema for {obj['apiVersion']} {obj['kind']} in Kubernetes {kubernetes_version}"]
    return []


def run(ctx: Context) -> dict[str, Outcome]:
    outcomes = {}
    for target in ctx.targets:
        version = ctx.kubernetes_version(target)
        reasons = []
        for path, obj in load_objects(ctx.compiled / target, ctx.root):
            reasons += [f"{path}: {p}" for p in problems_of(obj, ctx.root, version)]
        outcomes[target] = Outcome.failed(reasons)
    return outcomes
