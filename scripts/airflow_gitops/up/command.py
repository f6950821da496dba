"""`airflow-gitops up --target ENV` and `airflow-gitops down --target ENV`: the CLI's side of kubelet.py.

`up` stays in the foreground: it brings the environment up, prints the pods' status, forwards
127.0.0.1:<port> to the api-server, runs every CronJob once with --run-cronjobs, and on Ctrl-C,
SIGTERM or `down` stops every pod (each within its grace period) and removes the network, the
cgroups and (without --keep) its working directory. `down --pod NAME` deletes one pod of a running
`up` (a request file under .cache/up/<target>/requests, which `up` polls), as `kubectl delete pod`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from ..airflow_env import ensure_airflow
from . import kubelet, manifests, network, preflight, standins
from .kubelet import IMAGE_EXTRAS, LocalEnvironment, UpError
from .sandbox import pod_specs


def _git(*args: str, cwd: Path) -> None:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, "GIT_AUTHOR_NAME": "airflow-gitops up", "GIT_AUTHOR_EMAIL": "up@localhost",
                                 "GIT_COMMITTER_NAME": "airflow-gitops up", "GIT_COMMITTER_EMAIL": "up@localhost"})
    if result.returncode != 0:
        raise UpError(f"git {' '.join(args)}: {result.stderr.strip()}")


def _git_sync_sources(environment: manifests.EnvironmentManifests) -> dict[str, str]:
    """repository URL -> ref of every git-sync container of the environment."""
    sources: dict[str, str] = {}
    for _, spec in pod_specs(environment.objects.values()):
        for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
            env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
            if "GITSYNC_REPO" in env:
                sources[env["GITSYNC_REPO"]] = env.get("GITSYNC_REF", "HEAD")
    return sources


def dag_repositories(environment: manifests.EnvironmentManifests, dags: Path, workdir: Path) -> dict[str, str]:
    """A local repository standing in for each DAG repository git-sync clones: `dags` committed at
    the DAG folder's place (the sub-path of [core] dags_folder under the git-sync link), on the
    branch the environment follows."""
    cfg = environment.config_maps.get("airflow-config", {}).get("airflow.cfg", "")
    folder = next((line.split("=", 1)[1].strip() for line in cfg.splitlines() if line.startswith("dags_folder")), "")
    sub_path = folder.split("/repo/", 1)[1] if "/repo/" in folder else ""
    repositories = {}
    for index, (url, ref) in enumerate(sorted(_git_sync_sources(environment).items())):
        work, bare = workdir / f"dag-source-{index}", workdir / f"dag-repo-{index}.git"
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(bare, ignore_errors=True)
        shutil.copytree(dags, work / sub_path if sub_path else work, ignore=shutil.ignore_patterns("__pycache__"))
        _git("init", "-q", "-b", ref, str(work), cwd=workdir)
        _git("add", "-A", cwd=work)
        _git("commit", "-q", "-m", f"DAGs from {dags}", cwd=work)
        _git("clone", "-q", "--bare", str(work), str(bare), cwd=workdir)
        repositories[url] = str(bare)
    return repositories


def git_sync_credentials(environment: manifests.EnvironmentManifests) -> dict[str, dict[str, str]]:
    """Placeholders for the Secrets only git-sync containers mount (a deploy key, a token): the
    stand-in clones a local repository and reads no credentials, and these Secrets are made
    outside Git. Given in the secrets file, the real ones are used instead."""
    placeholders: dict[str, dict[str, str]] = {}
    for _, spec in pod_specs(environment.objects.values()):
        containers = [*spec.get("initContainers", []), *spec.get("containers", [])]
        for volume in spec.get("volumes", []):
            secret = (volume.get("secret") or {}).get("secretName")
            if not secret or secret in environment.secrets:
                continue
            users = [c for c in containers if any(m["name"] == volume["name"] for m in c.get("volumeMounts", []))]
            if users and all(standins.image_kind(str(c.get("image", ""))) == "git-sync" for c in users):
                keys = [item["key"] for item in volume["secret"].get("items", [])] or ["ssh"]
                placeholders[secret] = {key: "" for key in keys}
    return placeholders


def _airflow_version(environment: manifests.EnvironmentManifests) -> str:
    for obj in environment.objects.values():
        version = (obj.get("metadata", {}).get("labels") or {}).get("app.kubernetes.io/version")
        if version:
            return str(version)
    raise UpError(f"{environment.environment}: no object says its Airflow version (label app.kubernetes.io/version)")


def _serve_requests(root: Path, target: str, local: LocalEnvironment) -> None:
    """Answers the pod deletions `down --pod` asked for (request file <pod>.delete, answer <pod>.done)."""
    requests = kubelet.requests_dir(root, target)
    for request in sorted(requests.glob("*.delete")) if requests.is_dir() else []:
        pod = request.read_text().strip()
        request.unlink(missing_ok=True)
        try:
            answer = local.delete_pod(pod)
            say_status = local.status()
        except UpError as error:
            answer, say_status = f"error: {error}", ""
        if say_status:
            local.say(say_status)
        (requests / f"{pod}.done").write_text(answer)


def run_up(root: Path, target: str, *, dags: Path | None = None, port: int | None = 8080,
           secrets_file: Path | None = None, keep: bool = False, say: Callable[[str], None] = print,
           stop: threading.Event | None = None, run_cronjobs: bool = False) -> None:
    """Brings `target` up and keeps it up until `stop` is set (or SIGINT/SIGTERM), then tears it down."""
    stop = stop or threading.Event()
    environment = manifests.load(root, target, secrets_file)
    missing = preflight.problems(environment.objects.values())
    if missing:
        raise UpError(f"{target}: up cannot run here; it needs:\n" + "\n".join(f"  - {line}" for line in missing))
    environment.secrets.update(git_sync_credentials(environment))
    workdir = root / ".cache" / "up" / target
    run = workdir / "run"
    kubelet.unmount_under(run)  # a crashed run's Memory emptyDirs
    shutil.rmtree(run, ignore_errors=True)
    shutil.rmtree(kubelet.requests_dir(root, target), ignore_errors=True)
    run.mkdir(parents=True)
    pid = kubelet.pid_file(root, target)
    pid.write_text(str(os.getpid()))
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    try:
        version = _airflow_version(environment)
        say(f"{target}: preparing the image stand-in (Airflow {version} in a virtualenv)")
        airflow = ensure_airflow(root, version, IMAGE_EXTRAS)
        repositories = dag_repositories(environment, dags or root / "dags", run)
        with LocalEnvironment(target, run, airflow=airflow, repositories=repositories, say=say) as local:
            local.up(environment)
            api = next((p for p in local.pods.values() if p.workload["metadata"]["name"] == "airflow-api-server"), None)
            forward = None
            if api is not None and port is not None:
                container = api.sandbox.container("api-server")
                forward = network.PortForward(port, api.net.ip, int(container["ports"][0]["containerPort"]))
                forward.__enter__()
                say(f"{target}: the api-server answers at http://127.0.0.1:{forward.port}")
            try:
                if run_cronjobs:
                    for result in local.run_cronjobs():
                        say(f"{target}: CronJob {result.name}: {result.outcome}: {result.detail.splitlines()[0] if result.detail else ''}")
                say(local.status())
                say(f"{target}: up; Ctrl-C or `airflow-gitops down --target {target}` stops it")
                while not stop.wait(1):
                    _serve_requests(root, target, local)
                say(local.status())
            finally:
                if forward is not None:
                    forward.__exit__(None, None, None)
    finally:
        pid.unlink(missing_ok=True)
        if not keep:
            shutil.rmtree(run, ignore_errors=True)
        say(f"{target}: stopped; nothing left running")


def print_delete_pod(root: Path, target: str, pod: str) -> int:
    print(kubelet.request_pod_deletion(root, target, pod))
    return 0


def print_down(root: Path, target: str) -> int:
    running = kubelet.down(root, target)
    print(f"{target}: {'stopped' if running else 'was not running; removed any leftovers'}")
    return 0


