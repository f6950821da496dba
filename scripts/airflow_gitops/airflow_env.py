"""An isolated virtualenv with the Apache Airflow version an environment deploys.

Airflow and Kapitan pin incompatible libraries, so Airflow lives in its own virtualenv under
`.cache/airflow-envs/`, created on first use and reused; the key covers the Airflow version
and the extra requirements, so a change of either builds a fresh one.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import AirflowEnvironmentError

# The provider whose loader reads the KubernetesExecutor pod template; pinned for repeatability.
PROVIDER_PINS = ("apache-airflow-providers-cncf-kubernetes==10.25.0",)
_READY_MARKER = ".ready"


@dataclass(frozen=True)
class AirflowEnvironment:
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def airflow(self) -> Path:
        return self.path / "bin" / "airflow"


def cache_dir(root: Path) -> Path:
    override = os.environ.get("AIRFLOW_GITOPS_CACHE")
    return Path(override) if override else root / ".cache"


def environment_key(version: str, requirements: tuple[str, ...] = ()) -> str:
    digest = hashlib.sha256("\n".join((version, *PROVIDER_PINS, *sorted(requirements))).encode()).hexdigest()
    return f"airflow-{version}-{digest[:12]}"


def ensure_airflow(root: Path, version: str, requirements: tuple[str, ...] = ()) -> AirflowEnvironment:
    """The virtualenv for `version`, created if missing. Safe against concurrent callers."""
    envs = cache_dir(root) / "airflow-envs"
    envs.mkdir(parents=True, exist_ok=True)
    env = AirflowEnvironment(envs / environment_key(version, requirements))
    if (env.path / _READY_MARKER).exists():
        return env
    with open(envs / f"{env.path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (env.path / _READY_MARKER).exists():
            return env
        # A half-built environment (interrupted install) is rebuilt from scratch.
        shutil.rmtree(env.path, ignore_errors=True)
        packages = [f"apache-airflow[postgres]=={version}", *PROVIDER_PINS, *requirements]
        steps = [
            [sys.executable, "-m", "venv", str(env.path)],
            [str(env.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *packages],
        ]
        for step in steps:
            result = subprocess.run(step, capture_output=True, text=True)
            if result.returncode != 0:
                shutil.rmtree(env.path, ignore_errors=True)
                raise AirflowEnvironmentError(
                    f"could not install Apache Airflow {version} into {env.path}:\n"
                    + "\n".join(result.stderr.strip().splitlines()[-15:])
                )
        (env.path / _READY_MARKER).write_text(" ".join(packages) + "\n")
    return env
