"""An isolated virtualenv with the Apache Airflow version an environment deploys.

Airflow and Kapitan pin incompatible libraries, so Airflow lives in its own virtualenv under
`.cache/airflow-envs/`, created on first use and reused; the key covers the Airflow version
and the extra requirements, so a change of either builds a fresh one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .venvs import cache_dir, ensure_venv

__all__ = ["AirflowEnvironment", "cache_dir", "ensure_airflow", "environment_key"]

# Providers the compiled configuration relies on, pinned for repeatability (a change of pins builds
# a fresh environment, see environment_key). They also put their options into the option list the
# compile checks against (`airflow-gitops config-options`): an option of a provider missing here
# would be refused as unknown.
# - cncf-kubernetes: its loader reads the KubernetesExecutor pod template.
# - fab: the FAB auth manager (database users, OAuth/OIDC, LDAP sign-in); the official
#   apache/airflow image ships it.
# - keycloak: the Keycloak auth manager; the official image does not ship it, so an environment
#   choosing it needs an image built with this provider.
PROVIDER_PINS = (
    "apache-airflow-providers-cncf-kubernetes==10.25.0",
    "apache-airflow-providers-fab==3.10.2",
    "apache-airflow-providers-keycloak==0.11.2",
)


@dataclass(frozen=True)
class AirflowEnvironment:
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def airflow(self) -> Path:
        return self.path / "bin" / "airflow"


def environment_key(version: str, requirements: tuple[str, ...] = ()) -> str:
    digest = hashlib.sha256("\n".join((version, *PROVIDER_PINS, *sorted(requirements))).encode()).hexdigest()
    return f"airflow-{version}-{digest[:12]}"


def ensure_airflow(root: Path, version: str, requirements: tuple[str, ...] = ()) -> AirflowEnvironment:
    """The virtualenv for `version`, created if missing. Safe against concurrent callers."""
    path = cache_dir(root) / "airflow-envs" / environment_key(version, requirements)
    packages = [f"apache-airflow[postgres]=={version}", *PROVIDER_PINS, *requirements]
    return AirflowEnvironment(ensure_venv(path, packages, f"Apache Airflow {version}"))
