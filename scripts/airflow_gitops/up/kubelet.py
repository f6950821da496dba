"""An environment's compiled pods brought up on this machine, in the order the GitOps engines apply
them, and run the way the kubelet runs them.

Order: the workloads of the base directory (the bundled PostgreSQL, Redis...) until ready, then the
migration Job to completion, then the workloads (Deployments started, then Jobs run to completion).
In a pod: init containers one after the other, each to success; then the containers, each with its
postStart hook. Every container runs in its pod's sandbox (sandbox.py: a read-only root, only the
declared volumes, the pod's user), in its pod's network namespace (one address per pod; every
pod's /etc/hosts names the Services), under a cgroup with its memory and CPU limits; a container
that exits is restarted as restartPolicy Always does, and an OOM kill is counted and reported.

One pod per workload (replicas above 1 are reported, not run); CronJobs are not run; probes are
readiness probes run until the pod is ready, and liveness probes are not acted on yet.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from ..airflow_env import AirflowEnvironment
from ..errors import AirflowGitopsError
from ..processes import stop_groups
from . import limits, manifests, network
from .sandbox import CompiledPod, pod_spec_of

# What the official image carries beyond Airflow and the pinned providers that sign-in imports:
# python-ldap (extra `ldap`) for FAB's LDAP sign-in, authlib (extra `google-auth`) for its OAuth one.
IMAGE_EXTRAS = ("python-ldap==3.4.5", "authlib==1.9.10")
WORKLOAD_KINDS = ("StatefulSet", "Deployment", "Job")


class UpError(AirflowGitopsError):
    """The environment could not be brought up: what failed, with the end of its log."""


@dataclass
class ContainerRun:
    name: str
    log: Path
    cgroup: limits.ContainerCgroup
    memory_limit: int | None
    process: subprocess.Popen | None = None
    restarts: int = 0
    last_exit: int | None = None


@dataclass
class PodRun:
    workload: dict
    net: network.PodNetwork
    sandbox: CompiledPod = field(init=False)
    containers: dict[str, ContainerRun] = field(default_factory=dict)
    ready: bool = False
    phase: str = "Pending"

    @property
    def name(self) -> str:
        return self.net.pod

    @property
    def spec(self) -> dict:
        return dict(pod_spec_of(self.workload))


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class LocalEnvironment:
    """`with LocalEnvironment(...) as env: env.up()`: everything stopped and removed on exit."""

    def __init__(self, environment: str, workdir: Path, *, airflow: AirflowEnvironment,
                 repositories: Mapping[str, str], say: Callable[[str], None] = print) -> None:
        self.environment, self.workdir = environment, workdir
        self.airflow, self.repositories, self.say = airflow, dict(repositories), say
        self.pods: dict[str, PodRun] = {}
        self._stack = ExitStack()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> LocalEnvironment:
        network.cleanup(self.environment)  # what a crashed run left
        limits.remove_environment(self.environment)
        try:
            self.net = self._stack.enter_context(network.EnvironmentNetwork(self.environment))
            self.cgroups = self._stack.enter_context(limits.environment_cgroups(self.environment))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stops every container (SIGTERM to its group, then SIGKILL), then removes the cgroups and
        the network: nothing is left running."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
        with self._lock:
            processes = [c.process for p in self.pods.values() for c in p.containers.values() if c.process is not None]
        stop_groups(processes, timeout=30)
        self._stack.close()

    # --- bringing it up ---------------------------------------------------------------------------

    def up(self, environment: manifests.EnvironmentManifests, timeout: float = 600) -> None:
        """Brings the pods of `environment` (manifests.load) up, in order; UpError names what failed."""
        workloads = {name: obj for name, obj in environment.objects.items() if obj.get("kind") in WORKLOAD_KINDS}
        # Every pod's address first: each pod's /etc/hosts names them all.
        addresses = {name: self.net.add_pod(obj["metadata"]["name"] + ("-0" if obj["kind"] == "StatefulSet" else ""))
                     for name, obj in workloads.items()}
        files = {**self._node_files(environment, workloads, addresses), **{p: Path(p) for p in self.repositories.values()}}
        for name, obj in workloads.items():
            net = addresses[name]
            pod = PodRun(obj, net)
            pod.sandbox = CompiledPod(obj, airflow=self.airflow, workdir=self.workdir / "pods" / net.pod,
                                      secrets=environment.secrets, config_maps=environment.config_maps, files=files,
                                      wrap=self._wrapper(pod), repositories=self.repositories, hostname=net.pod)
            self.pods[name] = pod
        group = environment.groups
        base = [n for n in self.pods if group[n] == "base"]
        migrations = [n for n in self.pods if group[n] == "migrations"]
        workloads_started = [n for n in self.pods if group[n] == "workloads" and self.pods[n].workload["kind"] != "Job"]
        jobs = [n for n in self.pods if group[n] == "workloads" and self.pods[n].workload["kind"] == "Job"]
        deadline = time.monotonic() + timeout
        for name in base:
            self._start(self.pods[name])
        self._watch()
        for name in base:
            self._wait_ready(self.pods[name], deadline)
        for name in migrations:
            self._run_job(self.pods[name], deadline)
        for name in workloads_started:
            self._start(self.pods[name])
        for name in jobs:
            self._run_job(self.pods[name], deadline)
        for name in workloads_started:
            self._wait_ready(self.pods[name], deadline)

    def _node_files(self, environment: manifests.EnvironmentManifests, workloads: Mapping[str, dict],
                    addresses: Mapping[str, network.PodNetwork]) -> dict[str, Path]:
        """/etc/hosts naming every Service (as cluster DNS would resolve it) and the pods; a
        resolv.conf with no reachable nameserver, failing fast."""
        namespace = next((o["metadata"]["name"] for o in environment.objects.values() if o.get("kind") == "Namespace"), "")
        names: dict[str, list[str]] = {net.ip: [net.pod] for net in addresses.values()}
        for service in environment.of_kind("Service").values():
            selector = service["spec"].get("selector") or {}
            for name, obj in workloads.items():
                labels = obj["spec"].get("template", {}).get("metadata", {}).get("labels") or {}
                if selector and all(labels.get(k) == v for k, v in selector.items()):
                    names[addresses[name].ip] += network.service_names(service["metadata"]["name"], namespace)
                    break
        node = self.workdir / "node"
        node.mkdir(parents=True, exist_ok=True)
        (node / "hosts").write_text(network.hosts_file(names))
        (node / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        return {"/etc/hosts": node / "hosts", "/etc/resolv.conf": node / "resolv.conf"}

    def _wrapper(self, pod: PodRun) -> Callable[[str, list[str]], list[str]]:
        def wrap(container: str, argv: list[str]) -> list[str]:
            run = pod.containers.get(container)
            cgroup = run.cgroup if run is not None else self._cgroup(pod, container)[0]
            return cgroup.wrap([*pod.net.prefix(), *argv])
        return wrap

    def _cgroup(self, pod: PodRun, container: str) -> tuple[limits.ContainerCgroup, int | None]:
        spec = pod.sandbox.container(container)
        resources = (spec.get("resources") or {}).get("limits") or {}
        memory = limits.parse_memory(resources["memory"]) if "memory" in resources else None
        cpu = limits.parse_cpu(resources["cpu"]) if "cpu" in resources else None
        cgroup = self.cgroups.container(pod.name, container)
        cgroup.set_limits(memory, cpu)
        return cgroup, memory

    def _start(self, pod: PodRun) -> None:
        """Init containers to success (a native sidecar, restartPolicy Always, is started), then the
        containers, each with its postStart hook."""
        logs = self.workdir / "logs" / pod.name
        logs.mkdir(parents=True, exist_ok=True)
        pod.phase = "Initializing"
        for spec in pod.spec.get("initContainers", []):
            if spec.get("restartPolicy") == "Always":
                self._start_container(pod, spec["name"], logs)
                continue
            self._run_to_success(pod, spec["name"], logs)
        for spec in pod.spec.get("containers", []):
            self._start_container(pod, spec["name"], logs)
        pod.phase = "Running"

    def _run_to_success(self, pod: PodRun, container: str, logs: Path, timeout: float = 600) -> None:
        cgroup, memory = self._cgroup(pod, container)
        pod.containers[container] = ContainerRun(container, logs / f"{container}.log", cgroup, memory)
        result = pod.sandbox.run(container, timeout=timeout)
        (logs / f"{container}.log").write_text(result.stdout + result.stderr)
        pod.containers[container].last_exit = result.returncode
        if result.returncode != 0:
            oom = " (OOMKilled)" if cgroup.oom_kills() else ""
            raise UpError(f"{pod.name}: container {container} exited {result.returncode}{oom}:\n{(result.stdout + result.stderr)[-3000:]}")

    def _start_container(self, pod: PodRun, container: str, logs: Path) -> None:
        cgroup, memory = self._cgroup(pod, container)
        run = ContainerRun(container, logs / f"{container}.log", cgroup, memory)
        with self._lock:
            pod.containers[container] = run
            run.process = pod.sandbox.start(container, run.log)
        hook = ((pod.sandbox.container(container).get("lifecycle") or {}).get("postStart") or {}).get("exec")
        if hook:
            threading.Thread(target=pod.sandbox.run, args=(container,), kwargs={"timeout": 600, "command": hook["command"]},
                             daemon=True).start()

    def _run_job(self, pod: PodRun, deadline: float) -> None:
        logs = self.workdir / "logs" / pod.name
        logs.mkdir(parents=True, exist_ok=True)
        attempts = int(pod.workload["spec"].get("backoffLimit", 6)) + 1
        for attempt in range(attempts):
            try:
                self._start(pod)  # the Job's containers are started, then waited for
                for run in pod.containers.values():
                    if run.process is not None:
                        run.last_exit = run.process.wait(timeout=max(1.0, deadline - time.monotonic()))
                failed = [r for r in pod.containers.values() if r.last_exit not in (0, None)]
                if not failed:
                    pod.phase, pod.ready = "Succeeded", True
                    self.say(f"{pod.name}: succeeded")
                    return
                message = "; ".join(f"{r.name} exited {r.last_exit}{' (OOMKilled)' if r.cgroup.oom_kills() else ''}:\n{_tail(r.log)}" for r in failed)
            except UpError as error:
                message = str(error)
            except subprocess.TimeoutExpired:
                raise UpError(f"{pod.name}: still running at the deadline") from None
            self.say(f"{pod.name}: attempt {attempt + 1} of {attempts} failed")
        pod.phase = "Failed"
        raise UpError(f"{pod.name}: failed {attempts} times (backoffLimit): {message}")

    # --- probes and restarts --------------------------------------------------------------------

    def probe(self, pod: PodRun, container: str, probe: Mapping) -> bool:
        """One run of a probe, as the kubelet runs it: HTTP GET and TCP from the node to the pod's
        address, exec inside the container."""
        timeout = float(probe.get("timeoutSeconds", 1))
        spec = pod.sandbox.container(container)
        ports = {p.get("name"): p["containerPort"] for p in spec.get("ports", [])}

        def port_of(value: object) -> int:
            return int(ports[value]) if isinstance(value, str) and not value.isdigit() else int(value)  # type: ignore[arg-type]

        try:
            if "httpGet" in probe:
                get = probe["httpGet"]
                url = f"http://{pod.net.ip}:{port_of(get['port'])}{get.get('path', '/')}"
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    return 200 <= response.status < 400
            if "tcpSocket" in probe:
                with socket.create_connection((pod.net.ip, port_of(probe["tcpSocket"]["port"])), timeout=timeout):
                    return True
            if "exec" in probe:
                return pod.sandbox.run(container, timeout=max(timeout, 10), command=probe["exec"]["command"]).returncode == 0
        except (urllib.error.URLError, OSError, TimeoutError):
            return False
        return True

    def _wait_ready(self, pod: PodRun, deadline: float) -> None:
        probes = [(c["name"], c["readinessProbe"]) for c in pod.spec.get("containers", []) if c.get("readinessProbe")]
        while not all(self.probe(pod, name, probe) for name, probe in probes):
            for run in pod.containers.values():
                if run.process is not None and run.process.poll() is not None and run.restarts > 3:
                    raise UpError(f"{pod.name}: container {run.name} keeps exiting ({run.last_exit}):\n{_tail(run.log)}")
            if time.monotonic() > deadline:
                raise UpError(f"{pod.name}: not ready before the deadline:\n" + "\n".join(
                    f"--- {r.name}\n{_tail(r.log, 1500)}" for r in pod.containers.values()))
            time.sleep(2)
        pod.ready = True
        self.say(f"{pod.name}: ready ({pod.net.ip})")

    def _watch(self) -> None:
        """Restarts an exited container of a running pod (restartPolicy Always), counting it."""
        def loop() -> None:
            while not self._stopping.wait(1):
                with self._lock:
                    for pod in self.pods.values():
                        if pod.workload["kind"] == "Job" or pod.phase != "Running":
                            continue
                        for run in pod.containers.values():
                            if run.process is None or run.process.poll() is None:
                                continue
                            run.last_exit = run.process.returncode
                            stop_groups([run.process], timeout=5)
                            run.restarts += 1
                            oom = " (OOMKilled)" if run.cgroup.oom_kills() else ""
                            self.say(f"{pod.name}: container {run.name} exited {run.last_exit}{oom}; restart {run.restarts}")
                            run.process = pod.sandbox.start(run.name, run.log)
        self._watcher = threading.Thread(target=loop, daemon=True)
        self._watcher.start()

    # --- status -----------------------------------------------------------------------------------

    def status(self) -> str:
        """A table: pod, address, phase, ready, then per container its restarts and memory peak/limit."""
        rows = [("POD", "ADDRESS", "PHASE", "READY", "CONTAINER", "RESTARTS", "MEMORY PEAK / LIMIT")]
        for pod in self.pods.values():
            for i, run in enumerate(pod.containers.values()):
                limit = f"{run.memory_limit // 2**20}Mi" if run.memory_limit else "-"
                oom = f" OOMKilled x{run.cgroup.oom_kills()}" if run.cgroup.oom_kills() else ""
                rows.append((pod.name if i == 0 else "", pod.net.ip if i == 0 else "", pod.phase if i == 0 else "",
                             ("yes" if pod.ready else "no") if i == 0 else "", run.name, str(run.restarts),
                             f"{run.cgroup.memory_peak() // 2**20}Mi / {limit}{oom}"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def pid_file(root: Path, environment: str) -> Path:
    return root / ".cache" / "up" / environment / "up.pid"


def down(root: Path, environment: str, timeout: float = 60) -> bool:
    """Stops the `up` of `environment` (SIGTERM: it stops its containers and removes what it made),
    then removes anything a crashed one left; whether one was running."""
    path = pid_file(root, environment)
    was_running = False
    if path.exists():
        pid = int(path.read_text().strip() or 0)
        try:
            os.kill(pid, signal.SIGTERM)
            was_running = True
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                os.kill(pid, 0)
                time.sleep(0.5)
        except ProcessLookupError:
            pass
        path.unlink(missing_ok=True)
    network.cleanup(environment)
    limits.remove_environment(environment)
    return was_running
