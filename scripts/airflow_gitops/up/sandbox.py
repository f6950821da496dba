"""Runs a container of a compiled Kubernetes manifest on this machine, under the constraints its pod
imposes, with bubblewrap (`bwrap`) instead of a container runtime and a local Airflow virtualenv
standing in for the apache/airflow image.

What the pod gets, as the kubelet would give it:
- volumes: emptyDir (and persistentVolumeClaim / volumeClaimTemplates) as a directory per pod,
  shared by its containers and kept across runs, so an init container's output is what the main
  container sees; configMap, secret and projected (secret and configMap sources) as files written
  from the given data, `items` (key -> path, mode) or every key, `defaultMode`, `optional`;
  always read-only, as the kubelet mounts them. Mounts honour mountPath, subPath (a single file
  or directory of the volume) and readOnly.
- the root filesystem read-only: this machine's, read-only, except that /opt/airflow (holding
  dags/ and logs/) and /home/airflow are the image's, empty, the host's hidden; a write anywhere
  but a writable volume fails with EROFS, HOME (/home/airflow) included. A mount point missing on
  this machine is made on a tmpfs over its parent directory, the parent's entries bound back. The
  virtualenv standing in for the image is always visible: where a volume covers its path (a
  checkout under /tmp, /tmp an emptyDir), it is bound back over it, read-only.
- the user: securityContext runAsUser/runAsGroup (container over pod, default the image's
  50000:0), in a user namespace of its own (`--unshare-user --uid --gid`); runAsNonRoot with uid 0
  is refused as the kubelet refuses it. The image's /etc/passwd entry for 50000 ("airflow") is
  there, so getpass/whoami work as in the image.
- env: `value` (with Kubernetes' $(VAR) expansion of earlier variables), secretKeyRef and
  configMapKeyRef from the given data; anything else fails clearly. The image's env first (PATH =
  the virtualenv's bin, then /usr/bin:/bin; HOME; AIRFLOW_HOME=/opt/airflow...), then the
  container's.
- command/args: `command` (+ `args`) runs as given; `args` alone go through the image's entrypoint
  (scripts/docker/entrypoint_prod.sh of apache/airflow): `bash ...` runs /bin/bash, `python ...`
  the image's python, `airflow ...` and anything else `airflow <args>`; umask 0002 as the
  entrypoint sets it (0022 with `command`, which bypasses the entrypoint).
- the host's network (servers on 127.0.0.1 are reachable; the container's ports are the host's),
  its own PID and IPC namespaces, `--die-with-parent`. Stopping the bwrap process group
  (processes.stop_groups) stops everything in the container, whatever session it moved to: bwrap
  dies of the SIGTERM, and the namespace's init with it, which kills the rest. That is abrupt;
  `terminate` is the graceful stop the kubelet does: SIGTERM to the container's main process as
  the runtime delivers it (through the image's dumb-init for `args`-only Airflow containers: to
  the main process's whole group, or to the main process alone with DUMB_INIT_SETSID=0), up to
  the grace period for the main process to exit, then SIGKILL to everything left.
- env fieldRef (metadata.name, metadata.namespace, status.podIP, spec.nodeName,
  spec.serviceAccountName, status.hostIP) from `fields`, resourceFieldRef from the container's
  resources.
- persistentVolumeClaim volumes under `claims` (when given) by claim name, shared by every pod
  mounting the claim and outliving the pod; a StatefulSet's volumeClaimTemplates as the claim
  `<template>-<pod>`, as the StatefulSet controller names it.
- securityContext capabilities: every one dropped, then those under `add` added back.

`replace` substitutes text (cluster addresses -> local ones) in env values, command, args and the
files of configMap and secret volumes: only what a cluster would provide differs from the manifest.

Not modelled here (kubelet.py applies limits, probes and Memory emptyDirs): fsGroup/supplementalGroups (one uid and one gid are mapped, see below), the
entrypoint's `airflow db check` wait (CONNECTION_CHECK_MAX_COUNT; the compiled manifests set 0), a
root filesystem that is writable (readOnlyRootFilesystem false is treated as true), Services (use
`replace`), hostname (the host's).

On uids: bwrap maps the container's uid and gid to the uid and gid running the tests, and nothing
else. Files the test user owns (the virtualenv, the volumes this module writes) therefore appear
owned by the container's user inside, and files of other users as `nobody`. Owner permission bits
decide where a cluster would apply the group bits of fsGroup: a secret file of mode 0440 is
readable in both, one of mode 0040 only in the cluster. Airflow reads its virtualenv and writes its
volumes as uid 50000 this way; nothing here needs running as root inside.

    pod = CompiledPod(deployment, secrets={"airflow-secrets": {...}}, config_maps={"airflow-config": {...}},
                      airflow=ensure_airflow(REPO, "3.3.2"), workdir=tmp_path / "api-server",
                      replace={"airflow-postgres.airflow-dev.svc.cluster.local:5432": f"127.0.0.1:{port}"})
    pod.run("write-admin-passwords", timeout=60).check_returncode()
    server = pod.start("api-server", tmp_path / "api-server.log")   # stop it with processes.stop_groups
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..airflow_env import AirflowEnvironment
from ..processes import group_members, start_group, stop_groups
from .limits import parse_cpu, parse_memory
from .standins import STANDIN_KINDS, ImageDefaults, image_defaults, image_kind, standin_command

Data = Mapping[str, Mapping[str, str | bytes]]  # name -> key -> value (a Secret's stringData, a ConfigMap's data)

# The apache/airflow image: its user, home, working directory, environment and the directories it
# creates under /opt/airflow (Dockerfile: AIRFLOW_UID, AIRFLOW_USER_HOME_DIR, AIRFLOW_HOME, WORKDIR).
IMAGE_UID, IMAGE_GID = 50000, 0
IMAGE_USER_NAME = "airflow"
IMAGE_HOME = "/home/airflow"
IMAGE_WORKDIR = "/opt/airflow"
IMAGE_DIRS = ("/opt/airflow", "/opt/airflow/dags", "/opt/airflow/logs", IMAGE_HOME)
IMAGE_ENV = {"AIRFLOW_HOME": "/opt/airflow", "AIRFLOW_USER_HOME_DIR": IMAGE_HOME, "AIRFLOW_UID": str(IMAGE_UID),
             "HOME": IMAGE_HOME, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
# Host directories whose content the image replaces: its own entries there hide the host's.
IMAGE_OWNED = ("/opt", "/home")
ENTRYPOINT_UMASK, RUNTIME_UMASK = 0o002, 0o022
# The kubelet's default file mode of configMap, secret and projected volumes (0644).
DEFAULT_MODE = 0o644
# The image's /clean-logs (scripts/docker/clean-logs.sh): every AIRFLOW__LOG_CLEANUP_FREQUENCY_MINUTES,
# delete the files under $AIRFLOW_HOME/logs older than AIRFLOW__LOG_RETENTION_DAYS, and the empty
# directories left. Written from its documented behaviour, not copied.
CLEAN_LOGS = """#!/usr/bin/env bash
set -euo pipefail
directory="${AIRFLOW_HOME:-/opt/airflow}/logs"
retention="${AIRFLOW__LOG_RETENTION_DAYS:-15}"
frequency="${AIRFLOW__LOG_CLEANUP_FREQUENCY_MINUTES:-15}"
trap 'exit 0' TERM INT
echo "Cleaning logs every ${frequency} minutes, keeping ${retention} days"
while true; do
  find "${directory}" -type f -name '*.log' -mtime +"${retention}" -delete 2>/dev/null || true
  find "${directory}" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  sleep $(( frequency * 60 )) &
  wait $!
done
"""
DIRECTORY_VOLUMES = ("emptyDir", "persistentVolumeClaim")
FILE_VOLUMES = ("configMap", "secret", "projected")


class PodSpecError(ValueError):
    """Something of the pod spec this stand-in cannot give a container as Kubernetes would."""


def pod_spec_of(workload: Mapping) -> Mapping:
    """The pod spec of a Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob (or a
    pod spec itself)."""
    if "containers" in workload:
        return workload
    kind, spec = workload.get("kind"), workload.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    template = spec.get("template", {}).get("spec")
    if not template:
        raise PodSpecError(f"{kind or 'object'} {workload.get('metadata', {}).get('name', '?')} has no pod template")
    return template


# The kinds that carry a pod template.
POD_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")


def pod_specs(objects: Iterable[Mapping]) -> Iterator[tuple[Mapping, Mapping]]:
    """(object, its pod spec) for every object of `objects` that runs pods."""
    for obj in objects:
        if obj.get("kind") in POD_TEMPLATE_KINDS:
            yield obj, pod_spec_of(obj)


def _claim_templates(workload: Mapping) -> list[str]:
    """A StatefulSet's volumeClaimTemplates: volumes its containers mount without the pod listing them."""
    templates = (workload.get("spec") or {}).get("volumeClaimTemplates", []) if "kind" in workload else []
    return [t["metadata"]["name"] for t in templates]


def substitute(text: str, replace: Mapping[str, str]) -> str:
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in env values, command and args: a defined variable's value,
    `$$` an escaped `$`, an unknown reference left as it is."""
    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        return variables.get(match.group(1), match.group(0))

    return _REFERENCE.sub(one, text)


def _through_symlinks(target: str) -> str:
    """A mount path with the symlinks of this machine's existing directories resolved (/var/run ->
    /run): bwrap cannot make a mount point through a symlink, and the container sees the same path."""
    path = PurePosixPath(target)
    existing = next((p for p in [path, *path.parents] if Path(p).exists()), PurePosixPath("/"))
    return str(PurePosixPath(os.path.realpath(existing)) / path.relative_to(existing))


@dataclass(frozen=True)
class Mount:
    source: Path   # on this machine
    target: str    # in the container
    read_only: bool


class CompiledPod:
    """One pod of a compiled manifest, its containers runnable here (see the module docstring)."""

    def __init__(self, workload: Mapping, *, airflow: AirflowEnvironment, workdir: Path,
                 secrets: Data | None = None, config_maps: Data | None = None,
                 replace: Mapping[str, str] | None = None, files: Mapping[str, Path] | None = None,
                 wrap: Callable[[str, list[str]], list[str]] | None = None,
                 repositories: Mapping[str, str] | None = None, hostname: str | None = None,
                 fields: Mapping[str, str] | None = None, claims: Path | None = None) -> None:
        self.spec = pod_spec_of(workload)
        self.name = (workload.get("metadata") or {}).get("name", "pod")
        self.airflow = airflow
        self.workdir = Path(workdir).resolve()
        self.secrets = secrets or {}
        self.config_maps = config_maps or {}
        self.replace = dict(replace or {})
        # Files the node provides in every container (`up`: the pod's /etc/hosts and /etc/resolv.conf).
        self.files = dict(files or {})
        # Around each container's command line (`up`: enter the pod's network namespace and cgroup).
        self.wrap = wrap or (lambda container, argv: argv)
        # Git repositories standing in for the remotes git-sync containers clone (URL -> local path).
        self.repositories = dict(repositories or {})
        # The pod's hostname (its name, as the kubelet sets it; /etc/hosts resolves it to its address).
        self.hostname = hostname
        # The pod's own facts for env fieldRef (the downward API): its name, namespace, address...
        metadata = workload.get("metadata") or {}
        self.fields = {"metadata.name": hostname or self.name, "metadata.namespace": metadata.get("namespace", "default"),
                       "spec.serviceAccountName": self.spec.get("serviceAccountName", "default"),
                       "spec.nodeName": socket.gethostname(), **(fields or {})}
        # Where claims live (None: in the pod's own directory, as a volume of its own).
        self.claims = Path(claims).resolve() if claims is not None else None
        self.volumes = {v["name"]: v for v in self.spec.get("volumes", [])}
        for name in _claim_templates(workload):
            # The StatefulSet controller names a pod's claim <template>-<pod>.
            self.volumes.setdefault(name, {"name": name, "persistentVolumeClaim": {"claimName": f"{name}-{hostname or self.name}"}})
        self.bwrap = shutil.which("bwrap")
        if not self.bwrap:
            raise RuntimeError("bwrap is not installed: install the Debian package bubblewrap "
                               "(apt-get install bubblewrap; `make test-packages` installs what the tests need)")
        self._written: set[str] = set()

    # --- the pod's containers ---------------------------------------------------------------------

    def container(self, name: str) -> Mapping:
        containers = [*self.spec.get("initContainers", []), *self.spec.get("containers", [])]
        for container in containers:
            if container["name"] == name:
                return container
        raise PodSpecError(f"{self.name} has no container {name!r} (it has {', '.join(c['name'] for c in containers)})")

    def standin(self, container: str) -> ImageDefaults | None:
        """The image defaults of a container whose image has a stand-in (PostgreSQL, Redis,
        git-sync); None for apache/airflow (this virtualenv). Other images are refused."""
        image = str(self.container(container).get("image", ""))
        kind = image_kind(image)
        if kind in STANDIN_KINDS:
            return image_defaults(kind)
        if kind == "airflow" or (kind is None and not image):
            return None
        raise PodSpecError(f"{self.name}/{container}: no local stand-in for the image {image} "
                           f"(stand-ins exist for apache/airflow, {', '.join(sorted(STANDIN_KINDS))})")

    def user(self, container: str) -> tuple[int, int]:
        """(uid, gid) the container runs as: its securityContext over the pod's over the image's."""
        pod, own = self.spec.get("securityContext") or {}, self.container(container).get("securityContext") or {}
        standin = self.standin(container)
        image_uid, image_gid = standin.user if standin else (IMAGE_UID, IMAGE_GID)
        uid = own.get("runAsUser", pod.get("runAsUser", image_uid))
        # Without runAsGroup, the uid's group in the image's /etc/passwd, 0 for a uid it lacks.
        gid = own.get("runAsGroup", pod.get("runAsGroup", image_gid))
        if own.get("runAsNonRoot", pod.get("runAsNonRoot")) and uid == 0:
            raise PodSpecError(f"{container}: runAsNonRoot with runAsUser 0: the kubelet refuses to start it")
        return int(uid), int(gid)

    def command(self, container: str) -> tuple[list[str], bool]:
        """The command line the container runs, and whether it went through the image's entrypoint."""
        spec = self.container(container)
        variables = self._env(spec)
        command = [substitute(expand(a, variables), self.replace) for a in spec.get("command", [])]
        args = [substitute(expand(a, variables), self.replace) for a in spec.get("args", [])]
        standin = self.standin(container)
        if standin is not None:
            expanded = {**spec, "command": command, "args": args}
            return standin_command(image_kind(str(spec["image"])) or "", expanded, self.env(container), self.repositories), False
        if command:
            return [*command, *args], False
        if args[:1] == ["bash"]:
            return ["/bin/bash", *args[1:]], True
        if args[:1] == ["python"]:
            return ["python", *args[1:]], True
        return ["airflow", *(args[1:] if args[:1] == ["airflow"] else args)], True

    def env(self, container: str) -> dict[str, str]:
        """The container's environment: the image's, then the container's own (see the module docstring)."""
        standin = self.standin(container)
        image = dict(standin.env) if standin else {**IMAGE_ENV, "PATH": f"{self.airflow.path / 'bin'}:/usr/bin:/bin"}
        return {**image, **self._env(self.container(container))}

    def _env(self, spec: Mapping) -> dict[str, str]:
        if spec.get("envFrom"):
            raise PodSpecError(f"{spec['name']}: envFrom is not supported by CompiledPod")
        built: dict[str, str] = {}
        for var in spec.get("env", []):
            name = var["name"]
            if "valueFrom" not in var:
                built[name] = substitute(expand(var.get("value", ""), built), self.replace)
                continue
            source = var["valueFrom"]
            if "secretKeyRef" in source:
                value = self._lookup("Secret", self.secrets, source["secretKeyRef"])
            elif "configMapKeyRef" in source:
                value = self._lookup("ConfigMap", self.config_maps, source["configMapKeyRef"])
            elif "fieldRef" in source:
                path = source["fieldRef"]["fieldPath"]
                if path not in self.fields:
                    raise PodSpecError(f"{spec['name']}: env {name} comes from fieldRef {path}, which CompiledPod does "
                                       f"not provide (it provides {', '.join(sorted(self.fields))})")
                value = self.fields[path]
            elif "resourceFieldRef" in source:
                value = self._resource_field(spec, source["resourceFieldRef"])
            else:
                raise PodSpecError(f"{spec['name']}: env {name} comes from {', '.join(source)}, which CompiledPod does not "
                                   "provide (only secretKeyRef, configMapKeyRef, fieldRef and resourceFieldRef)")
            if value is not None:
                built[name] = substitute(value.decode() if isinstance(value, bytes) else value, self.replace)
        return built

    def _resource_field(self, spec: Mapping, ref: Mapping) -> str:
        """A resourceFieldRef's value as the kubelet computes it: the container's (or the named
        container's) request or limit divided by the divisor, rounded up; an unset limit is the
        node's capacity (this machine's CPUs and memory)."""
        container = self.container(ref["containerName"]) if ref.get("containerName") else spec
        section, _, resource = ref["resource"].partition(".")
        value = ((container.get("resources") or {}).get(section) or {}).get(resource)
        if resource == "cpu":
            millis = parse_cpu(value) if value is not None else (os.cpu_count() or 1) * 1000
            return str(math.ceil(millis / parse_cpu(ref.get("divisor", "1"))))
        if resource in ("memory", "ephemeral-storage"):
            size = parse_memory(value) if value is not None else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
            return str(math.ceil(size / parse_memory(ref.get("divisor", "1"))))
        raise PodSpecError(f"{spec['name']}: resourceFieldRef {ref['resource']} is not a resource CompiledPod knows")

    def _lookup(self, kind: str, data: Data, ref: Mapping) -> str | bytes | None:
        """ref's key of the named Secret or ConfigMap; None when missing and optional."""
        values = data.get(ref["name"])
        if values is None or ref["key"] not in values:
            if ref.get("optional"):
                return None
            missing = f"{kind} {ref['name']!r} was not given" if values is None else \
                f"{kind} {ref['name']!r} has no key {ref['key']!r} (keys: {', '.join(sorted(values))})"
            raise PodSpecError(f"{self.name}: {missing}")
        return values[ref["key"]]

    # --- volumes ------------------------------------------------------------------------------------

    def volume_dir(self, name: str) -> Path:
        """The directory on this machine holding volume `name` (created, and its files written, on
        first use): an emptyDir's content is what the containers wrote there."""
        volume = self.volumes.get(name)
        if volume is None:
            raise PodSpecError(f"{self.name} has no volume {name!r} (it has {', '.join(self.volumes) or 'none'})")
        path = self.workdir / "volumes" / name
        if "persistentVolumeClaim" in volume and self.claims is not None:
            path = self.claims / volume["persistentVolumeClaim"]["claimName"]
        if name in self._written:
            return path
        kinds = [k for k in volume if k != "name"]
        if any(k in DIRECTORY_VOLUMES for k in kinds):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)  # as the kubelet makes an emptyDir: any uid may write it
        elif any(k in FILE_VOLUMES for k in kinds):
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
            path.chmod(0o755)
            for relative, (content, mode) in self._volume_files(name, volume).items():
                file = path / relative
                file.parent.mkdir(parents=True, exist_ok=True)
                file.write_bytes(content)
                file.chmod(mode)
        else:
            raise PodSpecError(f"volume {name!r} is {', '.join(kinds)}, which CompiledPod does not provide "
                               f"(only {', '.join(DIRECTORY_VOLUMES + FILE_VOLUMES)})")
        self._written.add(name)
        return path

    def _volume_files(self, name: str, volume: Mapping) -> dict[str, tuple[bytes, int]]:
        """path in the volume -> (content after `replace`, mode) of a configMap/secret/projected volume."""
        if "projected" in volume:
            default = volume["projected"].get("defaultMode", DEFAULT_MODE)
            sources = []
            for source in volume["projected"].get("sources", []):
                kind = next(iter(source))
                if kind not in ("secret", "configMap"):
                    raise PodSpecError(f"volume {name!r}: projected source {kind} is not supported by CompiledPod")
                sources.append((kind, source[kind]))
        else:
            kind = "secret" if "secret" in volume else "configMap"
            source = dict(volume[kind])
            source["name"] = source.pop("secretName", source.get("name"))
            default = source.get("defaultMode", DEFAULT_MODE)
            sources = [(kind, source)]
        files: dict[str, tuple[bytes, int]] = {}
        for kind, source in sources:
            data = self.secrets if kind == "secret" else self.config_maps
            what = "Secret" if kind == "secret" else "ConfigMap"
            values = data.get(source["name"])
            if values is None:
                if source.get("optional"):
                    continue
                raise PodSpecError(f"volume {name!r}: {what} {source['name']!r} was not given")
            items = source.get("items") or [{"key": key, "path": key} for key in values]
            for item in items:
                value = self._lookup(what, data, {"name": source["name"], "key": item["key"],
                                                  "optional": source.get("optional")})
                if value is None:
                    continue
                text = substitute(value if isinstance(value, str) else value.decode(), self.replace)
                files[item["path"]] = (text.encode(), item.get("mode", default))
        return files

    def mounts(self, container: str) -> list[Mount]:
        """The container's volume mounts, shallowest first (as a runtime mounts them)."""
        mounts = []
        for mount in self.container(container).get("volumeMounts", []):
            volume = self.volumes.get(mount["name"], {})
            source = self.volume_dir(mount["name"])
            if mount.get("subPath"):
                source = source / mount["subPath"]
                if not source.exists():
                    if any(k in FILE_VOLUMES for k in volume):
                        raise PodSpecError(f"{container}: subPath {mount['subPath']!r} is not in volume {mount['name']!r}")
                    source.mkdir(parents=True, mode=0o777)  # the kubelet creates a missing subPath of a directory volume
            read_only = bool(mount.get("readOnly")) or any(k in FILE_VOLUMES for k in volume)
            mounts.append(Mount(source, _through_symlinks(mount["mountPath"]), read_only))
        return sorted(mounts, key=lambda m: len(PurePosixPath(m.target).parts))

    # --- bubblewrap ---------------------------------------------------------------------------------

    def argv(self, container: str, command: Sequence[str] | None = None) -> list[str]:
        """The bwrap command line that runs `container`, or `command` instead of its own in the same
        context (user, env, volumes); writes the volumes it mounts first."""
        uid, gid = self.user(container)
        spec = self.container(container)
        mounts = self.mounts(container)
        argv = [self.bwrap, "--die-with-parent", "--unshare-pid", "--unshare-user", "--uid", str(uid), "--gid", str(gid),
                "--unshare-ipc", "--cap-drop", "ALL"]
        # Added back what securityContext.capabilities.add names (the runtime's default set is
        # dropped either way: every manifest here drops ALL).
        for capability in ((spec.get("securityContext") or {}).get("capabilities") or {}).get("add", []):
            argv += ["--cap-add", capability if capability.startswith("CAP_") else f"CAP_{capability}"]
        if self.hostname:
            argv += ["--unshare-uts", "--hostname", self.hostname]
        standin = self.standin(container)
        workdir = spec.get("workingDir", standin.workdir if standin else IMAGE_WORKDIR)
        argv += self._filesystem(mounts, workdir)
        argv += ["--chdir", workdir, "--clearenv"]
        for name, value in self.env(container).items():
            argv += ["--setenv", name, value]
        return [*argv, "--", *(command if command is not None else self.command(container)[0])]

    def _filesystem(self, mounts: list[Mount], workdir: str = IMAGE_WORKDIR) -> list[str]:
        """The container's filesystem: the host read-only, the image's own directories over /opt and
        /home, the image's /etc/passwd, the volumes, the working directory (the runtime makes a
        missing one, as the image's WORKDIR: redis's /data), and every tmpfs made read-only at the end."""
        workdir = _through_symlinks(workdir)
        covered = any(PurePosixPath(m.target) == PurePosixPath(workdir) or PurePosixPath(m.target) in PurePosixPath(workdir).parents
                      for m in mounts)
        make_workdir = not covered and not Path(workdir).exists() and self._shadow_for(workdir) != ""
        targets = [*(m.target for m in mounts), *self._image_files(), *self.files, *([workdir] if make_workdir else [])]
        shadowed = sorted({*IMAGE_OWNED, *(self._shadow_for(t) for t in targets)} - {""},
                          key=lambda p: len(PurePosixPath(p).parts))
        # A mount point at the top (the postgres pod's /scripts) needs a root of its own: a tmpfs
        # with this machine's top-level entries bound back, made read-only at the end like the others.
        args = [] if "/" in shadowed else ["--ro-bind", "/", "/"]
        for directory in shadowed:
            args += ["--tmpfs", directory]
            # A directory the container's user cannot search (Debian's /etc/redis, 2770 redis:redis)
            # has nothing it could reach: only the mount points made in it.
            for entry in sorted(Path(directory).iterdir()) if Path(directory).is_dir() and _searchable(directory) else []:
                path = str(entry)
                if path in shadowed or path in ("/dev", "/proc") or any(path == d or d.startswith(path + "/") for d in IMAGE_DIRS):
                    continue  # made below, or the image's own
                args += ["--symlink", os.readlink(entry), path] if entry.is_symlink() else ["--ro-bind", path, path]
        args += ["--dev", "/dev", "--proc", "/proc"]
        for directory in [*IMAGE_DIRS, *([workdir] if make_workdir else [])]:
            args += ["--dir", directory]
        args += ["--ro-bind", str(self._passwd()), "/etc/passwd"]
        for target, source in sorted(self._image_files().items()):
            args += ["--ro-bind", str(source), target]
        for mount in mounts:
            args += ["--ro-bind" if mount.read_only else "--bind", str(mount.source), mount.target]
        # After the volumes: a node file under a volume's path (a local DAG repository under /tmp,
        # /tmp an emptyDir) stays visible.
        for target, source in sorted(self.files.items()):
            args += ["--ro-bind", str(source), target]
        if self._venv_hidden(mounts):
            # The image's files are always there: a virtualenv under a volume's path (a checkout
            # under /tmp, /tmp an emptyDir) is bound back over it, read-only, at its own path.
            venv = str(self.airflow.path.resolve())
            args += ["--ro-bind", venv, venv]
        for directory in reversed(shadowed):
            args += ["--remount-ro", directory]
        return args

    def _shadow_for(self, target: str) -> str:
        """The host directory to cover with a tmpfs (its entries bound back) so that the mount
        point `target` can be made in it: its deepest existing ancestor; "" when `target` exists or
        lies where a tmpfs already is (the image's directories, /opt, /home)."""
        path = PurePosixPath(target)
        if any(path == PurePosixPath(d) or PurePosixPath(d) in path.parents for d in IMAGE_DIRS) or Path(path).exists():
            return ""
        ancestor = next(p for p in path.parents if Path(p).exists())
        if str(ancestor) in IMAGE_OWNED:
            return ""
        return str(ancestor)

    def _venv_hidden(self, mounts: list[Mount]) -> bool:
        """Whether a volume (under /tmp, say, with /tmp an emptyDir) or the image's own directories
        cover the virtualenv standing in for the image."""
        venv = str(self.airflow.path.resolve())
        return any(venv == hiding or venv.startswith(hiding.rstrip("/") + "/")
                   for hiding in [*(m.target for m in mounts), *IMAGE_OWNED])

    def _image_files(self) -> dict[str, Path]:
        """Files of the apache/airflow image our manifests run (the log groomer's /clean-logs)."""
        path = self.workdir / "image" / "clean-logs"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(CLEAN_LOGS)
            path.chmod(0o755)
        return {"/clean-logs": path}

    def _passwd(self) -> Path:
        """This machine's /etc/passwd with the image's user added (the image has it; getpass needs it)."""
        path = self.workdir / "etc-passwd"
        if not path.exists():
            lines = Path("/etc/passwd").read_text().splitlines()
            images = [f"{IMAGE_USER_NAME}:x:{IMAGE_UID}:{IMAGE_GID}::{IMAGE_HOME}:/usr/sbin/nologin"]
            images += sorted({d.passwd for c in [*self.spec.get("initContainers", []), *self.spec.get("containers", [])]
                              if (d := self.standin(c["name"])) is not None})
            for entry in images:  # the images' users (postgres 999, git-sync 65533, airflow 50000)
                if not any(line.split(":")[2:3] == entry.split(":")[2:3] for line in lines):
                    lines.append(entry)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines) + "\n")
        return path

    # --- running ------------------------------------------------------------------------------------

    def _umask(self, container: str, command: Sequence[str] | None) -> int:
        return ENTRYPOINT_UMASK if command is None and self.command(container)[1] else RUNTIME_UMASK

    def run(self, container: str, timeout: float = 120, command: Sequence[str] | None = None,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Runs `container` (an init container, a Job's) to completion, output captured. On timeout
        everything in it is stopped and TimeoutError raised with the output so far."""
        argv = self.wrap(container, self.argv(container, command))
        process = start_group(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              umask=self._umask(container, command))
        try:
            stdout, stderr = process.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # bwrap first: the container's PID namespace goes with it
            stdout, stderr = process.communicate()
            raise TimeoutError(f"{self.name}/{container} still running after {timeout:.0f} s:\n"
                               f"{(stdout + stderr)[-3000:]}") from None
        finally:
            stop_groups([process], timeout=10)  # nothing it forked outlives it
        return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)

    def start(self, container: str, log_path: Path, command: Sequence[str] | None = None) -> subprocess.Popen:
        """Starts `container` (a long-running one) in a process group of its own, stdout and stderr
        to `log_path`; stop it with processes.stop_groups([process])."""
        argv = self.wrap(container, self.argv(container, command))
        with open(log_path, "w") as log:
            return start_group(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                               umask=self._umask(container, command))

    def signal_targets(self, container: str, process: subprocess.Popen) -> list[int]:
        """Host pids that get the SIGTERM the runtime sends the container's PID 1. That PID 1 is
        dumb-init for an `args`-only Airflow container (the image's ENTRYPOINT): it passes the
        signal on to its child's whole process group, or, with DUMB_INIT_SETSID=0, to its child
        alone (Celery's main process, which then stops taking tasks and lets the running ones end).
        Otherwise PID 1 is the command itself. Here the command runs below bwrap's init, so its
        main process is the oldest child of that init."""
        main = _main_process(process.pid)
        if main is None:
            return []
        through_dumb_init = self.standin(container) is None and self.command(container)[1]
        if not through_dumb_init or self.env(container).get("DUMB_INIT_SETSID") == "0":
            return [main]
        group = _stat(main)[2] if _stat(main) else main
        return [pid for pid in [main, *_descendants(main)] if (_stat(pid) or (0, 0, -1))[2] == group]

    def terminate(self, container: str, process: subprocess.Popen, grace_seconds: float) -> tuple[float, bool]:
        """Stops a started container as the kubelet does: SIGTERM (the image's STOPSIGNAL: SIGINT
        for postgres) as the runtime delivers it (see
        signal_targets), up to `grace_seconds` for its main process to exit, then SIGKILL to
        everything left. (seconds it took, whether SIGKILL was needed)."""
        began = time.monotonic()
        main = _main_process(process.pid)
        standin = self.standin(container)
        stop_signal = standin.stop_signal if standin else signal.SIGTERM  # the image's STOPSIGNAL
        for pid in self.signal_targets(container, process):
            try:
                os.kill(pid, stop_signal)
            except ProcessLookupError:
                pass
        deadline = began + max(0.0, grace_seconds)
        # The container ends with its main process (PID 1 in a cluster): wait for that one.
        while process.poll() is None and main is not None and _stat(main) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        killed = process.poll() is None and main is not None and _stat(main) is not None
        if process.poll() is None or group_members(process.pid):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            stop_groups([process], timeout=10)
        return time.monotonic() - began, killed


def _searchable(directory: str) -> bool:
    """Whether the sandbox's user may search `directory` of this machine: bwrap maps it to the
    uid and gid running it (the owner's and group's bits apply to their files), anyone else's
    files are nobody's (the other bits apply)."""
    st = os.stat(directory)
    if st.st_uid == os.getuid():
        return bool(st.st_mode & 0o100)
    if st.st_gid == os.getgid():
        return bool(st.st_mode & 0o010)
    return bool(st.st_mode & 0o001)


def _stat(pid: int) -> tuple[int, int, int, int] | None:
    """(ppid, start time, process group, state is running) of a live process; None when gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), int(fields[19]), int(fields[2]), 1


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None and stat[0] == pid:
            found.append(int(entry))
    return sorted(found, key=lambda p: (_stat(p) or (0, 0))[1])


def _descendants(pid: int) -> list[int]:
    found, stack = [], [pid]
    while stack:
        for child in _children(stack.pop()):
            found.append(child)
            stack.append(child)
    return found


def _main_process(leader: int) -> int | None:
    """The container's main process below a started bwrap (`leader`, the wrappers having exec'd
    into it): bwrap's only child is the PID namespace's init, whose oldest child is the command."""
    init = next(iter(_children(leader)), None)
    return next(iter(_children(init)), None) if init is not None else None
