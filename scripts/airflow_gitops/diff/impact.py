"""What a change of compiled objects means for Airflow, in the words a reviewer needs: which
components roll and why, the migration Job, upgrades and refused downgrades, executor changes,
DAG source moves, secret rotations; and the dangers: data loss, immutable fields that make the
sync fail, a claim that shrinks."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .objects import ABSENT, REF_TAG, ObjectChange, _ini

# A Kapitan ref's value on one side ("old" or "new") of the change, by its path
# (targets/dev/fernet_key); None where it cannot be read (an encrypting backend, a missing file).
RefValues = Callable[[str, str], "str | None"]

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
MIGRATION_COMPONENT = "db-migrations"
CFG_KEY = "airflow.cfg"
QUANTITY = re.compile(r"^(?P<n>[0-9.]+)(?P<unit>[KMGTPE]i?|[mk])?$")
UNITS = {None: 1, "m": 1e-3, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
         "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
FERNET_WARNING = ("without the rotation procedure (first NEW,OLD, then `airflow rotate-fernet-key`, then NEW alone: "
                  "README, Rotating a secret) connections, variables and trigger arguments encrypted with the old "
                  "key can no longer be read")


@dataclass
class Impact:
    dangers: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def _get(obj: dict[str, Any] | None, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _component(change: ObjectChange) -> str:
    obj = change.new or change.old or {}
    return str(_get(obj, "metadata", "labels", "app.kubernetes.io/component") or change.name.removeprefix("airflow-"))


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _quantity(value: Any) -> float | None:
    match = QUANTITY.match(str(value))
    return float(match.group("n")) * UNITS[match.group("unit")] if match else None


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def _cfg(obj: dict[str, Any] | None) -> dict[str, dict[str, str]]:
    text = _get(obj, "data", CFG_KEY)
    return (_ini(text) or {}) if isinstance(text, str) else {}


def _protected(obj: dict[str, Any]) -> bool:
    annotations = _get(obj, "metadata", "annotations") or {}
    return "Delete=false" in str(annotations.get("argocd.argoproj.io/sync-options", "")) \
        or annotations.get("kustomize.toolkit.fluxcd.io/prune") == "disabled"


# --- dangers -------------------------------------------------------------------------------------


def _data_loss(change: ObjectChange) -> list[str]:
    if change.status != "removed":
        return []
    obj = change.old or {}
    kept = " (Argo CD and Flux leave it in place, Prune=false: its data stays until deleted by hand, but nothing uses it)"
    if change.kind in ("PersistentVolumeClaim", "Namespace"):
        return [f"DANGER data loss: {change.label} removed" + (kept if _protected(obj) else "")]
    if change.kind == "StatefulSet" and _get(obj, "spec", "volumeClaimTemplates"):
        what = "the bundled database" if _component(change) == "postgres" else "its data"
        retained = _get(obj, "spec", "persistentVolumeClaimRetentionPolicy", "whenDeleted") == "Retain"
        return [f"DANGER data loss: StatefulSet {change.name} removed, and with it {what}"
                + (" (its claims are retained, but nothing uses them)" if retained else " (its claims are deleted with it)")]
    return []


def _changed_under(change: ObjectChange, *prefixes: str) -> bool:
    return any(f.path == p or f.path.startswith((p + ".", p + "[")) for f in change.fields for p in prefixes)


def _immutable(change: ObjectChange) -> list[str]:
    if change.status != "changed":
        return []
    found = []
    label = change.label
    if change.kind == "StatefulSet":
        for path in ("spec.selector", "spec.volumeClaimTemplates", "spec.serviceName", "spec.podManagementPolicy"):
            if _changed_under(change, path):
                found.append(f"DANGER sync fails: {label} {path} changed (immutable); "
                             "delete the StatefulSet with --cascade=orphan first (its pods and claims stay)")
    elif change.kind in ("Deployment", "DaemonSet", "ReplicaSet") and _changed_under(change, "spec.selector"):
        found.append(f"DANGER sync fails: {label} spec.selector changed (immutable); "
                     f"delete the {change.kind} first (its pods stop until the sync re-creates it)")
    elif change.kind == "Job" and not change.old_name:
        for path in ("spec.template", "spec.selector", "spec.completions"):
            if _changed_under(change, path):
                found.append(f"DANGER sync fails: {label} {path} changed (immutable); "
                             "give the Job a new name or delete it first")
    elif change.kind == "PersistentVolumeClaim":
        old_size = _get(change.old, "spec", "resources", "requests", "storage")
        new_size = _get(change.new, "spec", "resources", "requests", "storage")
        if old_size != new_size:
            old_q, new_q = _quantity(old_size), _quantity(new_size)
            if old_q is not None and new_q is not None and new_q < old_q:
                found.append(f"DANGER sync fails: {label} shrinks {old_size} -> {new_size} (a claim cannot shrink)")
        others = sorted({f.path for f in change.fields if f.path.startswith("spec")
                         and not f.path.startswith("spec.resources.requests.storage")})
        for path in others:
            found.append(f"DANGER sync fails: {label} {path} changed (immutable: only a size increase is allowed); "
                         "a new claim means new, empty storage")
    elif change.kind == "Service":
        pass
    if change.kind == "Service":
        for path in ("spec.clusterIP", "spec.clusterIPs"):
            if _changed_under(change, path):
                found.append(f"DANGER sync fails: {label} {path} changed (immutable); delete the Service first")
        old_type = _get(change.old, "spec", "type") or "ClusterIP"
        new_type = _get(change.new, "spec", "type") or "ClusterIP"
        if old_type != new_type and "ExternalName" in (old_type, new_type):
            found.append(f"DANGER sync fails: {label} spec.type {old_type} -> {new_type} "
                         "(its cluster IP cannot be kept or dropped in place); delete the Service first")
    if change.kind in ("ConfigMap", "Secret") and _get(change.old, "immutable") is True:
        if any(f.path.split(".")[0].split("[")[0] in ("data", "stringData", "binaryData", "immutable") for f in change.fields):
            found.append(f"DANGER sync fails: {label} is immutable and its data changed; rename it or delete it first")
    return found


# --- Airflow -------------------------------------------------------------------------------------


def _rolls(changes: list[ObjectChange]) -> list[str]:
    by_reason: dict[str, list[str]] = {}
    for change in changes:
        if change.kind not in WORKLOAD_KINDS:
            continue
        if change.status == "added":
            by_reason.setdefault("starts (new)", []).append(_component(change))
            continue
        if change.status == "removed":
            by_reason.setdefault("stops (removed)", []).append(_component(change))
            continue
        template = [f for f in change.fields if f.path.startswith("spec.template.")]
        if not template:
            continue
        checksums = sorted({f.path.rsplit(".", 1)[-1] for f in template
                            if f.path.startswith("spec.template.metadata.annotations.checksum/")})
        other = [f for f in template if not f.path.startswith("spec.template.metadata.annotations.checksum/")]
        reasons = [f"{_join(checksums)} changed"] if checksums else []
        if other:
            reasons.append("pod template changed: " + _join(sorted({_short_template_path(f.path) for f in other})))
        by_reason.setdefault(f"roll ({'; '.join(reasons)})", []).append(_component(change))
    lines = []
    for reason, components in by_reason.items():
        verb = reason if len(components) > 1 or not reason.startswith("roll") else "rolls" + reason[4:]
        if reason.startswith(("starts", "stops")) and len(components) > 1:
            verb = reason.replace("starts", "start").replace("stops", "stop")
        lines.append(f"{_join(sorted(components))} {verb}")
    pod_template = [c for c in changes if c.kind == "ConfigMap" and c.status == "changed" and any("pod_template" in f.path for f in c.fields)]
    if pod_template:
        lines.append("new KubernetesExecutor worker pods use the changed pod template (running tasks keep theirs)")
    cronjobs = sorted(c.name.removeprefix("airflow-") for c in changes if c.kind == "CronJob" and c.status == "changed"
                      and _changed_under(c, "spec.jobTemplate"))
    if cronjobs:
        lines.append(f"CronJob{'s' if len(cronjobs) > 1 else ''} {_join(cronjobs)}: the next run{'s use' if len(cronjobs) > 1 else ' uses'} the new template")
    return lines


def _short_template_path(path: str) -> str:
    rest = path.removeprefix("spec.template.")
    rest = re.sub(r"^spec\.(initContainers|containers)\[([^\]]+)\]\.", "", rest)
    rest = re.sub(r"^spec\.", "", rest)
    rest = re.sub(r"\[[^\]]+\].*$", "", rest)
    return rest.split(".")[0]


def _airflow_version(change: ObjectChange, side: str) -> str | None:
    obj = getattr(change, side)
    return _get(obj, "metadata", "labels", "app.kubernetes.io/version")


def _migration(changes: list[ObjectChange]) -> tuple[list[str], list[str]]:
    dangers, lines = [], []
    for change in changes:
        if change.kind != "Job" or _component(change) != MIGRATION_COMPONENT or change.status == "removed":
            continue
        if change.status == "changed" and not change.old_name:
            continue
        new_version = _airflow_version(change, "new")
        old_version = _airflow_version(change, "old") if change.old else None
        job = f"the migration Job {change.name}"
        if old_version and new_version and old_version != new_version:
            if _version_key(new_version) < _version_key(old_version):
                dangers.append(f"DANGER Airflow downgrade {old_version} -> {new_version} is refused: {job} fails on a database "
                               f"{old_version} migrated and every Airflow pod waits for it (run "
                               f"`airflow db downgrade --to-version {new_version}` with {old_version} first)")
                continue
            lines.append(f"Airflow upgrade {old_version} -> {new_version}: Airflow pods wait for the migration before they start")
            lines.append(f"{job} runs: Airflow {old_version} -> {new_version}")
        elif change.old is None:
            lines.append(f"{job} runs: Airflow {new_version} (a new migration Job)")
        else:
            what = _join(sorted({_short_template_path(f.path) for f in change.fields if f.path.startswith("spec.template.")}) or ["its name"])
            lines.append(f"{job} runs again: Airflow {new_version} (its template changed: {what})")
    return dangers, lines


def _config_changes(changes: list[ObjectChange]) -> list[str]:
    lines = []
    for change in changes:
        if change.kind != "ConfigMap" or change.status != "changed" or CFG_KEY not in (_get(change.new, "data") or {}):
            continue
        old, new = _cfg(change.old), _cfg(change.new)
        old_executor, new_executor = _get(old, "core", "executor"), _get(new, "core", "executor")
        if old_executor != new_executor:
            lines.append(f"executor {old_executor} -> {new_executor}: tasks in flight are not adopted by the new executor "
                         "(they fail, or retry if they have retries); pause the DAGs and let running tasks finish first")
        old_auth, new_auth = _get(old, "core", "auth_manager"), _get(new, "core", "auth_manager")
        if old_auth != new_auth:
            lines.append(f"auth manager {str(old_auth).rsplit('.', 1)[-1]} -> {str(new_auth).rsplit('.', 1)[-1]}: "
                         "users sign in differently; sessions end")
    return lines


def _service_types(changes: list[ObjectChange]) -> list[str]:
    lines = []
    for change in changes:
        if change.kind == "Service" and change.status == "changed":
            old_type = _get(change.old, "spec", "type") or "ClusterIP"
            new_type = _get(change.new, "spec", "type") or "ClusterIP"
            if old_type != new_type and "ExternalName" not in (old_type, new_type):
                lines.append(f"{change.label} type {old_type} -> {new_type} (changed in place"
                             + ("; the cloud provisions a load balancer with an external address)" if new_type == "LoadBalancer" else ")"))
    return lines


def _dag_source_of(obj: dict[str, Any] | None) -> dict[str, str]:
    found: dict[str, str] = {}
    spec = _get(obj, "spec", "template", "spec") or {}
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for env in container.get("env") or []:
            if env.get("name") in ("GITSYNC_REPO", "GITSYNC_REF") and "value" in env:
                found["repo" if env["name"] == "GITSYNC_REPO" else "ref"] = str(env["value"])
    for volume in spec.get("volumes") or []:
        if volume.get("name") == "dags" and "persistentVolumeClaim" in volume:
            found["claim"] = str(volume["persistentVolumeClaim"].get("claimName"))
    return found


def _dag_sources(changes: list[ObjectChange]) -> list[str]:
    moves: dict[str, tuple[str | None, str | None]] = {}
    for change in changes:
        if change.status != "changed":
            continue
        if change.kind in WORKLOAD_KINDS:
            old, new = _dag_source_of(change.old), _dag_source_of(change.new)
            for key in ("repo", "ref", "claim"):
                if old.get(key) != new.get(key) and old.get(key) and new.get(key):
                    moves.setdefault(key, (old.get(key), new.get(key)))
        if change.kind == "ConfigMap":
            old_cfg, new_cfg = _cfg(change.old), _cfg(change.new)
            old_folder, new_folder = _get(old_cfg, "core", "dags_folder"), _get(new_cfg, "core", "dags_folder")
            if old_folder and new_folder and old_folder != new_folder:
                moves.setdefault("sub-path", (_sub_path(old_folder), _sub_path(new_folder)))
            for key, (o, n) in _bundle_moves(old_cfg, new_cfg).items():
                moves.setdefault(key, (o, n))
    if not moves:
        return []
    parts = [f"{key} {old} -> {new}" for key, (old, new) in moves.items()]
    return [f"DAG source moves: {'; '.join(parts)} (the DAGs the scheduler runs change with it)"]


def _sub_path(folder: str) -> str:
    return folder.split("/repo", 1)[1].lstrip("/") or "/" if "/repo" in folder else folder


def _bundle_moves(old_cfg: dict[str, dict[str, str]], new_cfg: dict[str, dict[str, str]]) -> dict[str, tuple[str, str]]:
    def kwargs(cfg: dict[str, dict[str, str]]) -> dict[str, Any]:
        try:
            bundles = json.loads(_get(cfg, "dag_processor", "dag_bundle_config_list") or "[]")
        except ValueError:
            return {}
        return next((b.get("kwargs") or {} for b in bundles if isinstance(b, dict)), {})

    old, new = kwargs(old_cfg), kwargs(new_cfg)
    names = {"repo_url": "repo", "tracking_ref": "ref", "subdir": "sub-path"}
    return {label: (str(old.get(key)), str(new.get(key))) for key, label in names.items()
            if old and new and old.get(key) != new.get(key)}


def _fernet_rotation(tag: str, ref_values: RefValues | None) -> str:
    """What a new fernet key value means, read from the refs on both sides (never shown): the
    rotation procedure's steps are safe, anything else breaks what the old key encrypted."""
    match = REF_TAG.search(tag)
    old = ref_values(match["path"], "old") if ref_values and match else None
    new = ref_values(match["path"], "new") if ref_values and match else None
    if old is None or new is None:
        return FERNET_WARNING
    # The Secret appends the first key's trailing "=" itself (README, Rotating a secret): compare keys without it.
    old_keys, new_keys = ([k.strip().rstrip("=") for k in value.split(",")] for value in (old, new))
    if old_keys[0] in new_keys[1:]:
        return ("a new key first and the old one kept (NEW,OLD): what the old key encrypted still reads; next run "
                "`airflow rotate-fernet-key`, then drop the old key (README, Rotating a secret)")
    if new_keys == old_keys[:1] and len(old_keys) > 1:
        return ("the old key dropped (NEW alone): only safe once `airflow rotate-fernet-key` ran with NEW,OLD "
                "(README, Rotating a secret)")
    return FERNET_WARNING


def _secrets(changes: list[ObjectChange], ref_values: RefValues | None = None) -> list[str]:
    lines = []
    # Only the secrets checksum of a pod changed: what it reads is the same, the values are new.
    readers = sorted(_component(c) for c in changes if c.kind in WORKLOAD_KINDS and c.status == "changed"
                     and any(f.path == "spec.template.metadata.annotations.checksum/secrets" for f in c.fields)
                     and not any(f.path.startswith("spec.template.spec.") for f in c.fields))
    if any(c.kind in ("Secret", "ExternalSecret") and c.status != "changed" for c in changes):
        readers = []
    rotated_any = False
    for change in changes:
        if change.status != "changed":
            continue
        if change.kind == "Secret":
            for f in change.fields:
                if not f.secret or f.old is ABSENT or f.new is ABSENT:
                    continue
                key = f.path.split(".", 1)[1] if "." in f.path else f.path
                rotated_any = True
                line = f"secret rotated: {change.label} {key} (ref {f.new}), value changed"
                if key == "fernet-key":
                    line += f"; the fernet key: {_fernet_rotation(str(f.new), ref_values)}"
                lines.append(line)
        if change.kind == "ExternalSecret":
            for f in change.fields:
                if f.path.endswith("remoteRef.key") and f.old is not ABSENT and f.new is not ABSENT:
                    rotated_any = True
                    line = f"secret read from another store key: {change.label} {f.path.split('[')[1].split(']')[0]} {f.old} -> {f.new}"
                    if "fernet" in str(f.new):
                        line += f"; the fernet key: {FERNET_WARNING}"
                    lines.append(line)
    if readers and not rotated_any:
        lines.append(f"checksum/secrets changed with no ref or store key changing (secrets.generation raised, or a "
                     f"secret a pod reads added or dropped): {_join(readers)} re-read their secrets; if the store's "
                     f"fernet-key changed, {FERNET_WARNING}")
    return lines


def analyse(changes: list[ObjectChange], env_status: str = "changed", ref_values: RefValues | None = None) -> Impact:
    impact = Impact()
    if env_status == "removed":
        impact.lines.append("environment removed: its workloads are deleted; the namespace and claims are kept "
                            "(Prune=false), README, Remove an environment")
    elif env_status == "added":
        impact.lines.append("new environment: everything is created")
    for change in changes:
        impact.dangers += _immutable(change) + _data_loss(change)
    dangers, lines = _migration(changes)
    impact.dangers += dangers
    impact.lines += lines
    impact.lines += _config_changes(changes)
    if env_status == "changed":
        impact.lines += _rolls(changes)
    impact.lines += _dag_sources(changes)
    impact.lines += _service_types(changes)
    impact.lines += _secrets(changes, ref_values)
    return impact
