"""An environment's compiled pods brought up on this machine, in the order the GitOps engines apply
them, and run the way the kubelet runs them.

Order: the workloads of the base directory (the bundled PostgreSQL, Redis...) until ready, then the
migration Job to completion, then the workloads (Deployments and StatefulSets started, then Jobs
run to completion). In a pod: init containers one after the other, each to success (a native
sidecar, restartPolicy Always, started); then the containers, each with its postStart hook. Every
container runs in its pod's sandbox (sandbox.py: a read-only root, only the declared volumes, the
pod's user), in its pod's network namespace (one address per pod; every pod's /etc/hosts names the
Services), under a cgroup with its memory and CPU limits.

What the kubelet (and the controllers) would do, read from the manifests:
- replicas: a Deployment or StatefulSet runs `spec.replicas` pods (an HPA's or a KEDA
  ScaledObject's minimum where one targets it; at least one, since nothing here scales on load),
  at most controllers.MAX_REPLICAS, the cap shown under the status table. StatefulSet pods are
  <name>-<i>; a Deployment's are <name> when it has one, <name>-<i> when it has more. A Service's names resolve
  to one pod of its workloads, a ready one when there is one (/etc/hosts has one address per name:
  no load balancing, and a headless Service does not list every pod).
- probes: a startupProbe gates the liveness and readiness probes until it succeeds, and restarts
  the container after failureThreshold failures; a livenessProbe restarts the container after
  failureThreshold failures in a row; a readinessProbe keeps running (ready goes false and true
  again). initialDelaySeconds, periodSeconds, timeoutSeconds, successThreshold and
  failureThreshold are the manifest's; exec probes run in the container's sandbox and cgroup.
- restarts: an exited container is restarted (restartPolicy Always) with the kubelet's
  back-off (immediately, then 10 s doubling up to 5 min), counted; an OOM kill is reported.
- stopping a pod (LocalEnvironment.delete_pod, and `down`): each container's preStop hook, then
  its image's stop signal to its main process (sandbox.CompiledPod.terminate: through dumb-init
  for the Airflow image, which honours DUMB_INIT_SETSID), up to terminationGracePeriodSeconds for
  it to exit, then SIGKILL; native sidecars after the main containers. A deleted Deployment or
  StatefulSet pod is replaced as its controller would, under the same name and address (a
  Deployment's replacement would get a new name in a cluster), with fresh emptyDirs; claims stay.
- CronJobs are not scheduled: run_cronjob(name) runs one once through the same path as a Job; one
  needing the Kubernetes API (kubectl, `airflow kubernetes`, a ServiceAccount token) is skipped,
  with the reason.
- nothing may write outside its declared volumes: every container's output (logs, hooks, probes,
  init containers, Jobs) is scanned for EROFS ("Read-only file system"); read_only_violations()
  lists what was found and the status table shows it.
- emptyDir medium Memory is a tmpfs (sizeLimit its size), shared by the pod's containers.
"""

from __future__ import annotations

import os
import re
import shutil
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
from .controllers import kubernetes_api_reason, pod_names, replica_count
from .probes import PROBE_DEFAULTS, PROBE_KINDS, ProbeState
from .sandbox import CompiledPod, pod_spec_of

# What the official image carries beyond Airflow and the pinned providers that sign-in imports:
# python-ldap (extra `ldap`) for FAB's LDAP sign-in, authlib (extra `google-auth`) for its OAuth one, and the
# Celery provider (with celery[redis]) the image ships for the CeleryExecutor.
IMAGE_EXTRAS = ("python-ldap==3.4.5", "authlib==1.9.10", "apache-airflow-providers-celery==3.26.0",
                # celery 5.7 removed celery.backends.database.retry, which this provider imports.
                "celery[redis]==5.6.3")
WORKLOAD_KINDS = ("StatefulSet", "Deployment", "Job")
# The kubelet's defaults.
DEFAULT_GRACE_SECONDS = 30
BACKOFF_INITIAL_SECONDS, BACKOFF_MAX_SECONDS = 10, 300
# What a write to the read-only root prints (strerror(EROFS), Python's OSError name, Go's and Java's).
READ_ONLY_WRITE = re.compile(r"Read-only file system|\bEROFS\b")


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
    long_running: bool = False  # started (a container, a native sidecar), not run to completion
    generation: int = 0  # one per start: the probers of an earlier start stop
    started: threading.Event = field(default_factory=threading.Event)  # its startup probe passed
    ready: bool = False
    probes: dict[str, ProbeState] = field(default_factory=dict)
    restart_at: float | None = None  # exited, restarting then (the back-off)
    reason: str = ""  # why it last ended: Error, OOMKilled, a probe


@dataclass
class PodRun:
    workload: dict
    net: network.PodNetwork
    # The manifests' directory it came from (base, migrations, workloads), "" for a CronJob's run:
    # the order pods start and stop in.
    group: str
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

    @property
    def grace_seconds(self) -> float:
        return float(self.spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS))


@dataclass(frozen=True)
class CronJobResult:
    name: str
    outcome: str  # succeeded, failed, skipped
    detail: str


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class LocalEnvironment:
    """`with LocalEnvironment(...) as env: env.up(manifests)`: everything stopped and removed on exit."""

    def __init__(self, environment: str, workdir: Path, *, airflow: AirflowEnvironment,
                 repositories: Mapping[str, str], say: Callable[[str], None] = print) -> None:
        self.environment, self.workdir = environment, workdir
        self.airflow, self.repositories, self.say = airflow, dict(repositories), say
        self.pods: dict[str, PodRun] = {}  # pod name -> pod
        self.notes: list[str] = []  # shown under the status table
        self.manifests: manifests.EnvironmentManifests | None = None
        self._files: dict[str, Path] = {}
        self._violations: dict[str, list[str]] = {}  # "pod/container (where)" -> offending lines
        self._cronjob_runs = 0
        self._stack = ExitStack()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._lock = threading.RLock()

    # --- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> LocalEnvironment:
        network.cleanup(self.environment)  # what a crashed run left
        limits.remove_environment(self.environment)
        unmount_under(self.workdir)
        try:
            self.net = self._stack.enter_context(network.EnvironmentNetwork(self.environment))
            self.cgroups = self._stack.enter_context(limits.environment_cgroups(self.environment))
            self._stack.callback(unmount_under, self.workdir)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stops every pod as a namespace deletion would (preStop hooks, the stop signal, each
        pod's grace period, then SIGKILL), the workloads before the base (the database last),
        then removes the cgroups, the Memory emptyDirs and the network: nothing is left running."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
        order = {"workloads": 0, "migrations": 1, "base": 2}
        with self._lock:
            pods = list(self.pods.values())
        for rank in sorted(set(order.values()) | {3}):
            batch = [p for p in pods if order.get(p.group, 3) == rank]
            threads = [threading.Thread(target=self._stop_and_say, args=(p,), daemon=True) for p in batch]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        with self._lock:
            leftovers = [c.process for p in self.pods.values() for c in p.containers.values() if c.process is not None]
        stop_groups(leftovers, timeout=10)
        for pod in pods:
            self._scan_pod(pod)
        self._stack.close()

    # --- bringing it up ---------------------------------------------------------------------------

    def up(self, environment: manifests.EnvironmentManifests, timeout: float = 600) -> None:
        """Brings the pods of `environment` (manifests.load) up, in order; UpError names what failed."""
        self.manifests = environment
        workloads = {name: obj for name, obj in environment.objects.items() if obj.get("kind") in WORKLOAD_KINDS}
        # Every pod's address first: each pod's /etc/hosts names them all.
        planned: list[tuple[str, dict, str]] = []
        for file, obj in workloads.items():
            count = 1
            if obj["kind"] != "Job":
                count, note = replica_count(obj, environment.objects)
                if note:
                    self.notes.append(note)
            planned += [(file, obj, name) for name in pod_names(obj, count)]
        nets = {name: self.net.add_pod(name) for _, _, name in planned}
        self._files = {**self._node_files(), **{p: Path(p) for p in self.repositories.values()}}
        for file, obj, name in planned:
            self.pods[name] = self._new_pod(obj, nets[name], environment.groups[file])
        self._write_hosts()
        base = [n for n, p in self.pods.items() if p.group == "base"]
        migrations = [n for n, p in self.pods.items() if p.group == "migrations"]
        started = [n for n, p in self.pods.items() if p.group == "workloads" and p.workload["kind"] != "Job"]
        jobs = [n for n, p in self.pods.items() if p.group == "workloads" and p.workload["kind"] == "Job"]
        deadline = time.monotonic() + timeout
        for name in base:
            self._start(self.pods[name])
        self._watch()
        for name in base:
            self._wait_ready(self.pods[name], deadline)
        for name in migrations:
            self._run_job(self.pods[name], deadline)
        for name in started:
            self._start(self.pods[name])
        for name in jobs:
            self._run_job(self.pods[name], deadline)
        for name in started:
            self._wait_ready(self.pods[name], deadline)

    def _new_pod(self, workload: dict, net: network.PodNetwork, group: str) -> PodRun:
        pod = PodRun(workload, net, group)
        assert self.manifests is not None
        pod.sandbox = CompiledPod(workload, airflow=self.airflow, workdir=self.workdir / "pods" / net.pod,
                                  secrets=self.manifests.secrets, config_maps=self.manifests.config_maps,
                                  files=self._files, wrap=self._wrapper(pod), repositories=self.repositories,
                                  hostname=net.pod, claims=self.workdir / "claims",
                                  fields={"status.podIP": net.ip, "status.hostIP": net.gateway})
        return pod

    def _node_files(self) -> dict[str, Path]:
        """/etc/hosts (written by _write_hosts) and a resolv.conf with no reachable nameserver,
        failing fast."""
        node = self.workdir / "node"
        node.mkdir(parents=True, exist_ok=True)
        (node / "hosts").touch()
        (node / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        return {"/etc/hosts": node / "hosts", "/etc/resolv.conf": node / "resolv.conf"}

    def _write_hosts(self) -> None:
        """/etc/hosts naming every pod and every Service (as cluster DNS would resolve it), a
        Service to a ready pod of its workloads if there is one, else to the first. Rewritten in
        place (the containers bind the same file) when a pod's readiness changes."""
        assert self.manifests is not None
        namespace = next((o["metadata"]["name"] for o in self.manifests.objects.values() if o.get("kind") == "Namespace"), "")
        with self._lock:
            pods = list(self.pods.values())
        names: dict[str, list[str]] = {pod.net.ip: [pod.name] for pod in pods}
        for service in self.manifests.of_kind("Service").values():
            selector = service["spec"].get("selector") or {}
            if not selector:
                continue
            matching = [p for p in pods if p.workload["kind"] != "Job" and all(
                ((p.workload["spec"].get("template", {}).get("metadata", {}).get("labels") or {}).get(k) == v)
                for k, v in selector.items())]
            chosen = next((p for p in matching if p.ready), matching[0] if matching else None)
            if chosen is not None:
                names[chosen.net.ip] += network.service_names(service["metadata"]["name"], namespace)
        text = network.hosts_file(names)
        hosts = self._files["/etc/hosts"]
        if hosts.read_text() != text:
            with open(hosts, "r+") as file:  # the same inode: bind mounts of it see the change
                file.write(text)
                file.truncate()

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

    def _memory_volumes(self, pod: PodRun) -> None:
        """emptyDir medium Memory: a tmpfs (its sizeLimit, else half this machine's memory, the
        kernel's default), mounted on the pod's volume directory so that its containers share it."""
        for volume in pod.spec.get("volumes", []):
            empty = volume.get("emptyDir")
            if empty is None or empty.get("medium") != "Memory":
                continue
            path = pod.sandbox.volume_dir(volume["name"])
            if os.path.ismount(path):
                continue
            size = f",size={limits.parse_memory(empty['sizeLimit'])}" if empty.get("sizeLimit") else ""
            result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"mode=1777{size}", "tmpfs", str(path)],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                raise UpError(f"{pod.name}: cannot mount the Memory emptyDir {volume['name']} (tmpfs): {result.stderr.strip()}")

    def _start(self, pod: PodRun) -> None:
        """Init containers to success (a native sidecar, restartPolicy Always, is started), then the
        containers, each with its postStart hook."""
        logs = self.workdir / "logs" / pod.name
        logs.mkdir(parents=True, exist_ok=True)
        pod.phase = "Initializing"
        self._memory_volumes(pod)
        for spec in pod.spec.get("initContainers", []):
            if spec.get("restartPolicy") == "Always":
                self._start_container(pod, spec["name"], logs)
                continue
            self._run_to_success(pod, spec["name"], logs)
        for spec in pod.spec.get("containers", []):
            self._start_container(pod, spec["name"], logs)
        pod.phase = "Running"
        self._update_ready(pod)  # containers without probes are ready once running

    def _run_to_success(self, pod: PodRun, container: str, logs: Path, timeout: float = 600) -> None:
        cgroup, memory = self._cgroup(pod, container)
        pod.containers[container] = ContainerRun(container, logs / f"{container}.log", cgroup, memory)
        result = pod.sandbox.run(container, timeout=timeout)
        self._scan_text(f"{pod.name}/{container}", result.stdout + result.stderr)
        (logs / f"{container}.log").write_text(result.stdout + result.stderr)
        pod.containers[container].last_exit = result.returncode
        if result.returncode != 0:
            oom = " (OOMKilled)" if cgroup.oom_kills() else ""
            raise UpError(f"{pod.name}: container {container} exited {result.returncode}{oom}:\n{(result.stdout + result.stderr)[-3000:]}")

    def _start_container(self, pod: PodRun, container: str, logs: Path) -> None:
        cgroup, memory = self._cgroup(pod, container)
        run = ContainerRun(container, logs / f"{container}.log", cgroup, memory, long_running=True)
        with self._lock:
            pod.containers[container] = run
            self._launch(pod, run)

    def _launch(self, pod: PodRun, run: ContainerRun) -> None:
        """Starts the container's process, its postStart hook and its probers (one per probe)."""
        spec = pod.sandbox.container(run.name)
        run.generation += 1
        run.started = threading.Event()
        run.probes = {kind: ProbeState(kind, spec[f"{kind}Probe"]) for kind in PROBE_KINDS if spec.get(f"{kind}Probe")}
        run.ready = not run.probes.get("readiness") and not run.probes.get("startup")
        if "startup" not in run.probes:
            run.started.set()
        run.process = pod.sandbox.start(run.name, run.log)
        self._update_ready(pod)
        hook = (spec.get("lifecycle") or {}).get("postStart")
        if hook:
            threading.Thread(target=self._hook, args=(pod, run.name, hook, 600, "postStart"), daemon=True).start()
        for kind in run.probes:
            threading.Thread(target=self._probe_worker, args=(pod, run, run.generation, kind), daemon=True,
                             name=f"probe-{pod.name}-{run.name}-{kind}").start()

    def _hook(self, pod: PodRun, container: str, hook: Mapping, timeout: float, what: str) -> None:
        """A lifecycle hook: exec in the container's sandbox, httpGet to the pod, or sleep."""
        try:
            if "exec" in hook:
                result = pod.sandbox.run(container, timeout=max(1.0, timeout), command=hook["exec"]["command"])
                self._scan_text(f"{pod.name}/{container} ({what} hook)", result.stdout + result.stderr)
                if result.returncode != 0 and not self._stopping.is_set():  # killed by the stop otherwise
                    self.say(f"{pod.name}: the {what} hook of {container} exited {result.returncode}: "
                             f"{(result.stdout + result.stderr)[-500:]}")
            elif "httpGet" in hook:
                self._http_get(pod, container, hook["httpGet"], timeout)
            elif "sleep" in hook:
                time.sleep(min(float(hook["sleep"]["seconds"]), timeout))
        except (TimeoutError, OSError, urllib.error.URLError) as error:
            self.say(f"{pod.name}: the {what} hook of {container} failed: {error}")

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
                        stop_groups([run.process], timeout=5)
                        self._scan_log(pod, run)
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

    def _port(self, pod: PodRun, container: str, value: object) -> int:
        ports = {p.get("name"): p["containerPort"] for p in pod.sandbox.container(container).get("ports", [])}
        return int(ports[value]) if isinstance(value, str) and not value.isdigit() else int(value)  # type: ignore[arg-type]

    def _http_get(self, pod: PodRun, container: str, get: Mapping, timeout: float) -> bool:
        url = f"http://{pod.net.ip}:{self._port(pod, container, get['port'])}{get.get('path', '/')}"
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 400

    def probe(self, pod: PodRun, container: str, probe: Mapping) -> bool:
        """One run of a probe, as the kubelet runs it: HTTP GET and TCP from the node to the pod's
        address, exec inside the container (its sandbox and cgroup), each within timeoutSeconds."""
        timeout = float(probe.get("timeoutSeconds", PROBE_DEFAULTS["timeoutSeconds"]))
        try:
            if "httpGet" in probe:
                return self._http_get(pod, container, probe["httpGet"], timeout)
            if "tcpSocket" in probe:
                port = self._port(pod, container, probe["tcpSocket"]["port"])
                with socket.create_connection((pod.net.ip, port), timeout=timeout):
                    return True
            if "exec" in probe:
                result = pod.sandbox.run(container, timeout=timeout, command=probe["exec"]["command"])
                self._scan_text(f"{pod.name}/{container} (probe)", result.stdout + result.stderr)
                return result.returncode == 0
        except (urllib.error.URLError, OSError, TimeoutError):
            return False
        return True

    def _gone(self, pod: PodRun, run: ContainerRun, generation: int) -> bool:
        """Whether a prober of this start of the container has nothing left to do."""
        return (self._stopping.is_set() or run.generation != generation or pod.phase not in ("Running", "Initializing")
                or run.process is None or run.process.poll() is not None)

    def _sleep_until(self, when: float, pod: PodRun, run: ContainerRun, generation: int) -> bool:
        """Waits until `when`; False when the prober should stop meanwhile."""
        while time.monotonic() < when:
            if self._gone(pod, run, generation):
                return False
            self._stopping.wait(min(0.5, max(0.0, when - time.monotonic())))
        return not self._gone(pod, run, generation)

    def _probe_worker(self, pod: PodRun, run: ContainerRun, generation: int, kind: str) -> None:
        """Runs one probe of one start of a container, as the kubelet's probe worker does."""
        state = run.probes[kind]
        began = time.monotonic()
        if kind != "startup":  # liveness and readiness wait for the startup probe to pass
            while not run.started.wait(0.5):
                if self._gone(pod, run, generation):
                    return
        due = max(began + state.setting("initialDelaySeconds"), time.monotonic())
        while self._sleep_until(due, pod, run, generation):
            ok = self.probe(pod, run.name, state.spec)
            if self._gone(pod, run, generation):
                return
            state.record(ok)
            due = time.monotonic() + state.setting("periodSeconds")
            if kind == "startup":
                if ok:
                    run.started.set()
                    run.ready = "readiness" not in run.probes
                    self._update_ready(pod)
                    return
                if state.failures >= state.setting("failureThreshold"):
                    self._kill_for_probe(pod, run, state)
                    return
            elif kind == "liveness":
                if state.failures >= state.setting("failureThreshold"):
                    self._kill_for_probe(pod, run, state)
                    return
            else:
                if ok and state.successes >= state.setting("successThreshold"):
                    run.ready = True
                elif not ok and state.failures >= state.setting("failureThreshold"):
                    run.ready = False
                self._update_ready(pod)

    def _kill_for_probe(self, pod: PodRun, run: ContainerRun, state: ProbeState) -> None:
        """A failed liveness or startup probe: the container is killed (its stop signal, the grace
        period: the probe's terminationGracePeriodSeconds, else the pod's) and then restarted."""
        grace = float(state.spec.get("terminationGracePeriodSeconds", pod.grace_seconds))
        run.reason = f"{state.kind} probe failed"
        run.ready = False
        self._update_ready(pod)
        self.say(f"{pod.name}: container {run.name} failed its {state.kind} probe {state.failures} times; "
                 f"stopping it (grace {grace:.0f} s)")
        process = run.process
        if process is not None:
            pod.sandbox.terminate(run.name, process, grace)

    def _update_ready(self, pod: PodRun) -> None:
        """The pod is ready when every started container is; Services follow ready pods."""
        with self._lock:
            running = [r for r in pod.containers.values() if r.long_running]
            ready = pod.phase == "Running" and bool(running) and all(r.ready for r in running)
            if ready == pod.ready:
                return
            pod.ready = ready
        if self.manifests is not None and pod.workload["kind"] != "Job":
            self._write_hosts()

    def _wait_ready(self, pod: PodRun, deadline: float) -> None:
        while not pod.ready:
            for run in pod.containers.values():
                if run.restarts > 3 and run.restart_at is not None:
                    raise UpError(f"{pod.name}: container {run.name} keeps exiting ({run.last_exit}):\n{_tail(run.log)}")
            if time.monotonic() > deadline:
                raise UpError(f"{pod.name}: not ready before the deadline:\n" + "\n".join(
                    f"--- {r.name} {' '.join(p.report() for p in r.probes.values())}\n{_tail(r.log, 1500)}"
                    for r in pod.containers.values()))
            time.sleep(0.5)
        self.say(f"{pod.name}: ready ({pod.net.ip})")

    def wait_ready(self, name: str, timeout: float = 300) -> None:
        """Waits until pod `name` is ready (UpError when it is not within `timeout`)."""
        self._wait_ready(self._pod(name), time.monotonic() + timeout)

    def _watch(self) -> None:
        """Restarts an exited container of a running pod (restartPolicy Always) after the kubelet's
        back-off, counting it."""
        def loop() -> None:
            while not self._stopping.wait(0.5):
                with self._lock:
                    for pod in list(self.pods.values()):
                        if pod.workload["kind"] == "Job" or pod.phase != "Running":
                            continue
                        for run in pod.containers.values():
                            if run.long_running and run.process is not None and run.process.poll() is not None:
                                self._restart_later(pod, run)
        self._watcher = threading.Thread(target=loop, daemon=True, name="restart-watcher")
        self._watcher.start()

    def _restart_later(self, pod: PodRun, run: ContainerRun) -> None:
        assert run.process is not None
        now = time.monotonic()
        if run.restart_at is None:
            run.last_exit = run.process.returncode
            stop_groups([run.process], timeout=5)
            oom = run.cgroup.oom_kills()
            run.reason = "OOMKilled" if oom else (run.reason or ("Completed" if run.last_exit == 0 else "Error"))
            run.ready = False
            self._update_ready(pod)
            self._scan_log(pod, run)
            delay = 0 if run.restarts == 0 else min(BACKOFF_INITIAL_SECONDS * 2 ** (run.restarts - 1), BACKOFF_MAX_SECONDS)
            run.restart_at = now + delay
            oom_text = " (OOMKilled)" if oom else ""
            self.say(f"{pod.name}: container {run.name} exited {run.last_exit}{oom_text} ({run.reason}); "
                     f"restart {run.restarts + 1} in {delay} s")
        elif now >= run.restart_at:
            run.restarts += 1
            run.restart_at = None
            _keep_previous_log(run.log)
            self._launch(pod, run)
            run.reason = ""

    # --- deleting pods ------------------------------------------------------------------------------

    def _pod(self, name: str) -> PodRun:
        with self._lock:
            if name not in self.pods:
                raise UpError(f"{self.environment} has no pod {name!r} (it has {', '.join(sorted(self.pods))})")
            return self.pods[name]

    def _stop_and_say(self, pod: PodRun) -> None:
        began = time.monotonic()
        report = self._stop_pod(pod)
        if report:
            self.say(f"{pod.name}: stopped in {time.monotonic() - began:.1f} s ({'; '.join(report)})")

    def _stop_pod(self, pod: PodRun) -> list[str]:
        """Stops a pod as the kubelet does on deletion: each container's preStop hook, then its
        stop signal, within the pod's terminationGracePeriodSeconds (a hook's time counts), then
        SIGKILL; native sidecars after the main containers. What happened, per container."""
        with self._lock:
            was = pod.phase
            pod.phase = "Terminating"
            pod.ready = False
        deadline = time.monotonic() + pod.grace_seconds
        report: dict[str, str] = {}
        sidecars = {c["name"] for c in pod.spec.get("initContainers", []) if c.get("restartPolicy") == "Always"}

        def stop(run: ContainerRun) -> None:
            if run.process is None or run.process.poll() is not None:
                return
            hook = (pod.sandbox.container(run.name).get("lifecycle") or {}).get("preStop")
            if hook and was == "Running":
                self._hook(pod, run.name, hook, max(1.0, deadline - time.monotonic()), "preStop")
            took, killed = pod.sandbox.terminate(run.name, run.process, max(0.0, deadline - time.monotonic()))
            run.last_exit = run.process.returncode
            # -9 with the main process gone: what it left behind was killed with it, as when a
            # container's PID 1 exits; the main process's own status is not ours to read then.
            code = f" {run.last_exit}" if run.last_exit != -signal.SIGKILL else ""
            report[run.name] = (f"SIGKILL after the grace period ({pod.grace_seconds:.0f} s)" if killed
                                else f"exited{code} after {took:.1f} s")

        for names in ([n for n in pod.containers if n not in sidecars], [n for n in pod.containers if n in sidecars]):
            threads = [threading.Thread(target=stop, args=(pod.containers[n],), daemon=True) for n in names]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        pod.phase = "Terminated" if was != "Succeeded" else was
        return [f"{name}: {what}" for name, what in report.items()]

    def delete_pod(self, name: str, timeout: float = 600) -> str:
        """Deletes pod `name` as `kubectl delete pod` would: stopped as the kubelet stops it
        (_stop_pod), its network, cgroups and emptyDirs removed; a Deployment's or StatefulSet's
        pod is then replaced as its controller would (same name and address here), and started.
        What happened, one line."""
        pod = self._pod(name)
        report = self._stop_pod(pod)
        self._scan_pod(pod)
        for run in pod.containers.values():
            run.cgroup.remove()
        unmount_under(pod.sandbox.workdir)
        shutil.rmtree(pod.sandbox.workdir, ignore_errors=True)
        address = pod.net.ip
        self.net.remove_pod(name)
        message = f"{name}: deleted ({'; '.join(report) or 'nothing was running'})"
        if pod.workload["kind"] not in ("Deployment", "StatefulSet"):
            with self._lock:
                del self.pods[name]
            self._write_hosts()
            self.say(message)
            return message
        for run in pod.containers.values():
            _keep_previous_log(run.log)
        replacement = self._new_pod(pod.workload, self.net.add_pod(name, address), pod.group)
        with self._lock:
            self.pods[name] = replacement
        self._write_hosts()
        self._start(replacement)
        message += "; its replacement started"
        self.say(message)
        return message

    # --- CronJobs -----------------------------------------------------------------------------------

    def cronjobs(self) -> dict[str, dict]:
        """CronJob name -> object."""
        assert self.manifests is not None, "up() first"
        return {o["metadata"]["name"]: o for o in self.manifests.of_kind("CronJob").values()}

    def run_cronjob(self, name: str, timeout: float = 600) -> CronJobResult:
        """Runs CronJob `name` once now (as `kubectl create job --from=cronjob/<name>`), as a Job
        here runs: a pod <name>-<n>, its backoffLimit. One needing the Kubernetes API is skipped."""
        cronjobs = self.cronjobs()
        if name not in cronjobs:
            raise UpError(f"{self.environment} has no CronJob {name!r} (it has {', '.join(sorted(cronjobs)) or 'none'})")
        assert self.manifests is not None
        reason = kubernetes_api_reason(cronjobs[name], self.manifests.objects)
        if reason:
            result = CronJobResult(name, "skipped", f"needs the Kubernetes API, which is not here: {reason}")
            self.say(f"CronJob {name}: skipped: {result.detail}")
            return result
        self._cronjob_runs += 1
        cronjob = cronjobs[name]
        job = {"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {**cronjob["metadata"], "name": f"{name}-{self._cronjob_runs}"},
               "spec": cronjob["spec"]["jobTemplate"]["spec"]}
        pod = self._new_pod(job, self.net.add_pod(job["metadata"]["name"]), "")
        with self._lock:
            self.pods[pod.name] = pod
        self._write_hosts()
        try:
            self._run_job(pod, time.monotonic() + timeout)
        except UpError as error:
            self.say(f"CronJob {name}: failed: {error}")
            return CronJobResult(name, "failed", str(error))
        return CronJobResult(name, "succeeded", f"pod {pod.name} succeeded")

    def run_cronjobs(self) -> list[CronJobResult]:
        """Every CronJob once, in name order."""
        return [self.run_cronjob(name) for name in sorted(self.cronjobs())]

    # --- writes outside the volumes -----------------------------------------------------------------

    def _scan_text(self, where: str, text: str) -> None:
        lines = [line.strip() for line in text.splitlines() if READ_ONLY_WRITE.search(line)]
        if lines:
            with self._lock:
                found = self._violations.setdefault(where, [])
                found += [line for line in lines if line not in found]

    def _scan_log(self, pod: PodRun, run: ContainerRun) -> None:
        self._scan_text(f"{pod.name}/{run.name}", _tail(run.log, 10_000_000))

    def _scan_pod(self, pod: PodRun) -> None:
        for run in pod.containers.values():
            self._scan_log(pod, run)

    def read_only_violations(self) -> dict[str, list[str]]:
        """"pod/container" -> lines of its output reporting a write to the read-only root
        (EROFS), for every container so far: empty when nothing wrote outside its volumes."""
        with self._lock:
            pods = list(self.pods.values())
        for pod in pods:
            self._scan_pod(pod)
        with self._lock:
            return {where: list(lines) for where, lines in self._violations.items()}

    # --- status -----------------------------------------------------------------------------------

    def status(self) -> str:
        """A table: pod, address, phase, ready, then per container its restarts, memory peak/limit
        and probes (last result, failures in a row / threshold, failures in all); then the notes
        (replicas not run as asked) and any write to the read-only root."""
        rows = [("POD", "ADDRESS", "PHASE", "READY", "CONTAINER", "RESTARTS", "MEMORY PEAK / LIMIT", "PROBES")]
        with self._lock:
            pods = list(self.pods.values())
        for pod in pods:
            for i, run in enumerate(pod.containers.values()):
                limit = f"{run.memory_limit // 2**20}Mi" if run.memory_limit else "-"
                try:
                    kills, peak = run.cgroup.oom_kills(), f"{run.cgroup.memory_peak() // 2**20}Mi"
                except limits.CgroupError:
                    kills, peak = 0, "-"
                oom = f" OOMKilled x{kills}" if kills else ""
                probes = " ".join(p.report() for p in run.probes.values()) or "-"
                rows.append((pod.name if i == 0 else "", pod.net.ip if i == 0 else "", pod.phase if i == 0 else "",
                             ("yes" if pod.ready else "no") if i == 0 else "", run.name, str(run.restarts),
                             f"{peak} / {limit}{oom}", probes))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines += [f"note: {note}" for note in self.notes]
        for where, found in self.read_only_violations().items():
            lines.append(f"WRITE TO THE READ-ONLY ROOT: {where}: {found[0]}")
        return "\n".join(lines)


def _keep_previous_log(log: Path) -> None:
    """The log of the container's previous run, as `kubectl logs --previous` shows it."""
    if log.exists():
        log.replace(log.with_name(log.stem + ".previous.log"))


def unmount_under(directory: Path) -> None:
    """Unmounts every mount below `directory` (the Memory emptyDirs' tmpfs), deepest first."""
    root = str(Path(directory).resolve())
    mounts = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line.split()[1])
        if target == root or target.startswith(root + "/"):
            mounts.append(target)
    for target in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", target], capture_output=True)


def pid_file(root: Path, environment: str) -> Path:
    return root / ".cache" / "up" / environment / "up.pid"


def requests_dir(root: Path, environment: str) -> Path:
    """Where `down --pod` leaves a deletion request for the running `up` (and finds its answer)."""
    return root / ".cache" / "up" / environment / "requests"


def down(root: Path, environment: str, timeout: float = 900) -> bool:
    """Stops the `up` of `environment` (SIGTERM: it stops its pods, each within its grace period,
    and removes what it made), then removes anything a crashed one left; whether one was running."""
    path = pid_file(root, environment)
    was_running = False
    if path.exists():
        pid = int(path.read_text().strip() or 0)
        try:
            os.kill(pid, signal.SIGTERM)
            was_running = True
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.5)
        except ProcessLookupError:
            pass
        path.unlink(missing_ok=True)
    network.cleanup(environment)
    limits.remove_environment(environment)
    unmount_under(root / ".cache" / "up" / environment)
    return was_running


def _alive(pid: int) -> bool:
    """Whether `pid` still runs: an exited `up` its parent has not reaped yet (a zombie) does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] not in ("Z", "X")


def request_pod_deletion(root: Path, environment: str, pod: str, timeout: float = 900) -> str:
    """Asks the running `up` of `environment` to delete a pod (LocalEnvironment.delete_pod) and
    waits for its answer."""
    path = pid_file(root, environment)
    if not path.exists():
        raise UpError(f"{environment} is not up (no {path})")
    requests = requests_dir(root, environment)
    requests.mkdir(parents=True, exist_ok=True)
    answer = requests / f"{pod}.done"
    answer.unlink(missing_ok=True)
    (requests / f"{pod}.delete").write_text(pod)
    deadline = time.monotonic() + timeout
    while not answer.exists():
        if time.monotonic() > deadline:
            raise UpError(f"{environment}: no answer to deleting {pod} within {timeout:.0f} s")
        if not path.exists():
            raise UpError(f"{environment} stopped before deleting {pod}")
        time.sleep(0.5)
    text = answer.read_text()
    answer.unlink(missing_ok=True)
    if text.startswith("error: "):
        raise UpError(text[len("error: "):])
    return text
