"""What Kubernetes' controllers decide from an environment's manifests, for `up` to do the same:
how many pods a workload runs and their names, and which CronJobs cannot run without a Kubernetes API."""

from __future__ import annotations

import re
from collections.abc import Mapping

from .sandbox import pod_spec_of

# Pods per workload at most: this is one machine (2 CPUs in CI), and every Airflow pod costs
# hundreds of MiB.
MAX_REPLICAS = 3

def replica_count(workload: Mapping, objects: Mapping[str, Mapping]) -> tuple[int, str]:
    """Pods to run for a Deployment or StatefulSet, and a note when that is not spec.replicas:
    an HPA's minReplicas or a KEDA ScaledObject's minReplicaCount where one targets it (at rest,
    nothing here scales on load), at least 1, at most MAX_REPLICAS."""
    name, kind = workload["metadata"]["name"], workload["kind"]
    wanted, why = int(workload["spec"].get("replicas", 1)), ""
    for obj in objects.values():
        target = (obj.get("spec") or {}).get("scaleTargetRef") or {}
        if target.get("name") != name or target.get("kind", kind) != kind:
            continue
        if obj.get("kind") == "HorizontalPodAutoscaler":
            wanted, why = int(obj["spec"].get("minReplicas", 1)), f"HPA {obj['metadata']['name']} minReplicas"
        elif obj.get("kind") == "ScaledObject":
            wanted, why = int(obj["spec"].get("minReplicaCount", 0)), f"KEDA ScaledObject {obj['metadata']['name']} minReplicaCount"
    count = min(max(wanted, 1), MAX_REPLICAS)
    if count != wanted:
        limit = f"capped at {MAX_REPLICAS} pods a workload on one machine" if wanted > MAX_REPLICAS else "at least one (nothing here scales up on load)"
        return count, f"{kind} {name}: {wanted} replicas ({why or 'spec.replicas'}), {count} run: {limit}"
    return count, ""


def pod_names(workload: Mapping, count: int) -> list[str]:
    """A StatefulSet's pods are <name>-<i>, as its controller names them; a Deployment's <name>
    alone, or <name>-<i> when it has more than one (a cluster adds a hash and a random suffix)."""
    name = workload["metadata"]["name"]
    if workload["kind"] == "StatefulSet" or count > 1:
        return [f"{name}-{i}" for i in range(count)]
    return [name]


def kubernetes_api_reason(cronjob: Mapping, objects: Mapping[str, Mapping]) -> str | None:
    """Why a CronJob cannot run here (it needs the Kubernetes API, and there is none), or None."""
    spec = pod_spec_of(cronjob)
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        words = [str(w) for w in [*container.get("command", []), *container.get("args", [])]]
        line = " ".join(words)
        if "kubectl" in line:
            return f"container {container['name']} runs kubectl"
        if words[:1] == ["kubernetes"] or re.search(r"\bairflow\s+kubernetes\b", line):
            return (f"container {container['name']} runs `airflow {' '.join(words[words.index('kubernetes'):])}`, "
                    "which lists and deletes pods through the Kubernetes API")
    for volume in spec.get("volumes", []):
        if any("serviceAccountToken" in s for s in (volume.get("projected") or {}).get("sources", [])):
            return f"volume {volume['name']} projects a ServiceAccount token"
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        account = spec.get("serviceAccountName", "default")
        automount = next((o.get("automountServiceAccountToken", True) for o in objects.values()
                          if o.get("kind") == "ServiceAccount" and o["metadata"]["name"] == account), True)
    if automount:
        return f"it mounts the token of ServiceAccount {spec.get('serviceAccountName', 'default')} to call the Kubernetes API"
    return None
