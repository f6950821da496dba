"""What an environment needs that Git does not hold, and what stays in a cluster after it is gone,
both read from its compiled manifests (the objects the cluster gets) and its parameters."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..up.sandbox import pod_specs
from ..validate.objects import object_files

KEEP_ANNOTATIONS = {
    "argocd.argoproj.io/sync-options": "Delete=false",
    "kustomize.toolkit.fluxcd.io/prune": "disabled",
}


def manifests(compiled_env: Path) -> list[dict[str, Any]]:
    """Every object under compiled/<env>/manifests (kustomization files excluded)."""
    return [o for path in object_files(compiled_env / "manifests")
            for o in yaml.safe_load_all(path.read_text()) if isinstance(o, dict)]


def _name(obj: Mapping) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def _secrets_used(spec: Mapping) -> Iterator[tuple[str, str | None]]:
    """(Secret name, key read or None for every key) for every Secret a pod spec reads."""
    for secret in spec.get("imagePullSecrets") or []:
        yield secret["name"], ".dockerconfigjson"
    for volume in spec.get("volumes") or []:
        sources = [volume["secret"] | {"name": volume["secret"]["secretName"]}] if "secret" in volume else []
        sources += [s["secret"] for s in (volume.get("projected") or {}).get("sources") or [] if "secret" in s]
        for source in sources:
            items = source.get("items") or []
            if items:
                yield from ((source["name"], item["key"]) for item in items)
            else:
                yield source["name"], None
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                yield ref["name"], ref.get("key")
        for source in container.get("envFrom") or []:
            if "secretRef" in source:
                yield source["secretRef"]["name"], None


@dataclass(frozen=True)
class StoreKeys:
    store: str  # "ClusterSecretStore/airflow"
    keys: tuple[str, ...]


def store_keys(objects: Iterable[Mapping]) -> list[StoreKeys]:
    """The keys each secret store must hold for the environment's ExternalSecrets."""
    by_store: dict[str, set[str]] = {}
    for obj in objects:
        if obj.get("kind") != "ExternalSecret":
            continue
        spec = obj.get("spec") or {}
        ref = spec.get("secretStoreRef") or {}
        store = f"{ref.get('kind', 'SecretStore')}/{ref.get('name', '?')}"
        keys = {d["remoteRef"]["key"] for d in spec.get("data") or [] if "remoteRef" in d}
        keys |= {d["extract"]["key"] for d in spec.get("dataFrom") or [] if "extract" in d}
        by_store.setdefault(store, set()).update(keys)
    return [StoreKeys(store, tuple(sorted(keys))) for store, keys in sorted(by_store.items())]


def secrets_to_create(objects: list[Mapping]) -> dict[str, list[str]]:
    """Secrets the pods read that the manifests do not produce (neither a Secret nor an
    ExternalSecret's target), with the keys read from each."""
    produced = {_name(o) for o in objects if o.get("kind") == "Secret"}
    produced |= {((o.get("spec") or {}).get("target") or {}).get("name") or _name(o)
                 for o in objects if o.get("kind") == "ExternalSecret"}
    used: dict[str, set[str]] = {}
    for _, spec in pod_specs(objects):
        for name, key in _secrets_used(spec):
            used.setdefault(name, set()).update([key] if key else [])
    for o in objects:
        if o.get("kind") == "Ingress":
            for tls in (o.get("spec") or {}).get("tls") or []:
                if tls.get("secretName"):
                    used.setdefault(tls["secretName"], set()).update(["tls.crt", "tls.key"])
    return {name: sorted(keys) for name, keys in sorted(used.items()) if name not in produced}


def namespace_of(objects: list[Mapping]) -> str:
    return next((_name(o) for o in objects if o.get("kind") == "Namespace"), "")


def checklist(name: str, params: Mapping[str, Any], compiled_env: Path) -> list[str]:
    """What must exist outside Git before `name` runs, for the choices its inventory made."""
    objects = manifests(compiled_env)
    namespace = namespace_of(objects) or str(params.get("namespace", ""))
    items: list[str] = []
    for store in store_keys(objects):
        items.append(f"secret store {store.store} (External Secrets Operator) holds the keys: {', '.join(store.keys)}")
    for secret, keys in secrets_to_create(objects).items():
        items.append(f"Secret {secret} in namespace {namespace}, created outside Git, with the key{'s' if len(keys) > 1 else ''} "
                     f"{', '.join(keys)}" if keys else f"Secret {secret} in namespace {namespace}, created outside Git")
    if params.get("secrets", {}).get("mode") == "kapitan-refs":
        items.append(f"the refs under kapitan/refs/targets/{name}/ are committed (generated now; revealed at apply time by "
                     "the Argo CD plugin: a new value appears in no diff)")
    dags = params.get("dags", {})
    if dags.get("mode") == "pvc":
        pvc = dags.get("pvc", {})
        items.append(f"the DAGs reach the claim {pvc.get('claim_name', '?')} by a process of your own (dags.mode pvc)")
    else:
        git_sync = dags.get("git_sync", {})
        kind = git_sync.get("ref_type", "branch")
        how = (f"promoted from {git_sync['promoted_from']} with `airflow-gitops promote`" if git_sync.get("promoted_from")
               else f"published with `airflow-gitops sync-dags --target {name}`")
        items.append(f"the DAG repository {git_sync.get('repo', '?')} has the {kind} {git_sync.get('ref', '?')} ({how})")
    api = params.get("api_server", {})
    if api.get("base_url"):
        items.append(f"{api['base_url']} resolves to this environment's ingress or gateway (DNS, certificate)")
    for provider in params.get("auth", {}).get("fab", {}).get("oauth", {}).get("providers", []) \
            if params.get("auth", {}).get("fab", {}).get("method") == "oauth" else []:
        items.append(f"the identity provider {provider.get('server_url', provider.get('name'))} has the client "
                     f"{provider.get('client_id', '?')} with the callback {api.get('base_url', '')}/auth/oauth-authorized/{provider.get('name')}")
    classes = sorted({c for o in objects if o.get("kind") == "PersistentVolumeClaim"
                      for c in [(o.get("spec") or {}).get("storageClassName")] if c})
    if classes:
        items.append(f"the cluster has the storage class{'es' if len(classes) > 1 else ''} {', '.join(classes)}")
    if params.get("gitops", {}).get("engine", "argocd") == "argocd":
        items.append("Argo CD: the bootstrap re-applied once the commit is pushed (kubectl apply --server-side "
                     "--field-manager=airflow-gitops -k compiled/bootstrap/argocd): its AppProject must list the namespace "
                     f"{namespace} before the Application airflow-{name} may sync")
    else:
        items.append(f"Flux: nothing by hand; the bootstrap Kustomization applies compiled/{name}/flux once the commit is pushed")
    return items


def _kept(obj: Mapping) -> bool:
    annotations = obj.get("metadata", {}).get("annotations") or {}
    return any(value in str(annotations.get(key, "")) for key, value in KEEP_ANNOTATIONS.items())


def left_behind(name: str, params: Mapping[str, Any], compiled_env: Path,
                refs_in_use: set[tuple[str, str]] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """What stays when `name`'s manifests leave Git (kept by design: data), and how to delete it for good."""
    objects = manifests(compiled_env)
    namespace = namespace_of(objects) or str(params.get("namespace", ""))
    items: list[str] = []
    for obj in objects:
        if _kept(obj) and obj.get("kind") != "Namespace":
            items.append(f"{obj['kind']} {_name(obj)} in {namespace} (its data): "
                         f"kubectl -n {namespace} delete {obj['kind'].lower()} {_name(obj)}")
    for obj in objects:
        spec = obj.get("spec") or {}
        if obj.get("kind") == "StatefulSet" and spec.get("volumeClaimTemplates"):
            claims = [f"{t['metadata']['name']}-{_name(obj)}-{i}" for t in spec["volumeClaimTemplates"]
                      for i in range(int(spec.get("replicas", 1)))]
            items.append(f"the claims of StatefulSet {_name(obj)} ({', '.join(claims)}; retained): "
                         f"kubectl -n {namespace} delete pvc {' '.join(claims)}")
    if any(_kept(o) for o in objects if o.get("kind") == "Namespace"):
        items.append(f"the namespace {namespace}, with whatever is left in it: kubectl delete namespace {namespace} "
                     "(last: it deletes everything above)")
    for store in store_keys(objects):
        items.append(f"the keys in {store.store}: {', '.join(store.keys)} (delete them in the store)")
    database = params.get("database", {})
    if database.get("mode") == "external":
        items.append(f"the external metadata database (Secret {database.get('external', {}).get('secret_name', '?')} "
                     "points at it): drop it on the database server when its history is no longer wanted")
    git_sync = params.get("dags", {}).get("git_sync", {})
    # A ref another environment tracks, or the repository's main line, is not this environment's to delete.
    ref = (str(git_sync.get("repo", "")), str(git_sync.get("ref", "")))
    if params.get("dags", {}).get("mode") != "pvc" and ref[1] and ref not in refs_in_use and ref[1] not in ("main", "master"):
        items.append(f"the DAG {git_sync.get('ref_type', 'branch')} {git_sync['ref']} in {git_sync.get('repo', '?')}, "
                     "if nothing else tracks it")
    return items
