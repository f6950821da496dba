"""Checks that ask Apache Airflow itself about what we generate: airflow.cfg and the pod template."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .airflow_env import AirflowEnvironment
from .errors import AirflowCheckError

# Runs inside the Airflow virtualenv: every [section] key of the file must be an option Airflow
# (or an installed provider) knows; Airflow itself would silently ignore a misspelt one.
_UNKNOWN_KEYS_SCRIPT = """
import configparser, json, sys, warnings
warnings.simplefilter("ignore")
MARKER = "airflow-gitops-unknown-keys:"
from airflow.configuration import conf
described = conf.configuration_description
parser = configparser.ConfigParser(interpolation=None)
parser.read(sys.argv[1])
unknown = [f"[{s}] {o}" for s in parser.sections() for o in parser.options(s)
           if o not in described.get(s, {}).get("options", {})]
print(MARKER, json.dumps(unknown))
"""

# Loads the pod template with the cncf-kubernetes provider's own loader, as the executor does.
_POD_TEMPLATE_SCRIPT = """
import json, sys, warnings
warnings.simplefilter("ignore")
from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator
pod = PodGenerator.deserialize_model_file(sys.argv[1])
print(json.dumps({"containers": [c.name for c in pod.spec.containers],
                  "image": pod.spec.containers[0].image}))
"""


@dataclass
class ConfigReport:
    unknown_keys: list[str] = field(default_factory=list)
    lint_issues: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def find_manifest(manifests: Path, file_name: str) -> Path | None:
    """A compiled object's file, in whichever kustomize directory under `manifests` it sits."""
    return next(iter(sorted(manifests.rglob(file_name))), None)


def extract_configmap_file(manifest: Path, key: str) -> str:
    """The text of `key` in a compiled ConfigMap manifest."""
    obj = yaml.safe_load(manifest.read_text())
    try:
        return obj["data"][key]
    except (KeyError, TypeError):
        raise AirflowCheckError(f"{manifest}: ConfigMap has no data.{key}") from None


def _run(env: AirflowEnvironment, args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    run_env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }
    run_env.pop("AIRFLOW_CONFIG", None)
    return subprocess.run(args, capture_output=True, text=True, env=run_env, cwd=home)


def check_airflow_cfg(env: AirflowEnvironment, cfg_text: str, origin: str) -> ConfigReport:
    """`airflow config lint` plus an unknown-key check; raises AirflowCheckError on a real problem."""
    report = ConfigReport()
    with tempfile.TemporaryDirectory(prefix="airflow-home-") as tmp:
        home = Path(tmp)
        cfg = home / "airflow.cfg"
        cfg.write_text(cfg_text)
        lint = _run(env, [str(env.airflow), "config", "lint"], home)
        if lint.returncode != 0:
            raise AirflowCheckError(f"{origin}: `airflow config lint` failed:\n{lint.stderr.strip()[-2000:]}")
        for line in lint.stdout.splitlines():
            item = line.strip().removeprefix("- ").strip()
            if not line.strip().startswith("- "):
                continue
            # A changed default we set explicitly is information, not a problem.
            (report.notes if item.startswith("Changed default value") else report.lint_issues).append(item)
        unknown = _run(env, [str(env.python), "-c", _UNKNOWN_KEYS_SCRIPT, str(cfg)], home)
        if unknown.returncode != 0:
            raise AirflowCheckError(f"{origin}: could not read the configuration with Airflow:\n{unknown.stderr.strip()[-2000:]}")
        # Airflow may log to stdout too (e.g. an OpenTelemetry exporter at exit): find our line.
        found = [line.split(":", 1)[1] for line in unknown.stdout.splitlines() if line.startswith("airflow-gitops-unknown-keys:")]
        if not found:
            raise AirflowCheckError(f"{origin}: could not read the configuration with Airflow:\n{unknown.stdout.strip()[-2000:]}")
        report.unknown_keys = json.loads(found[-1])
    problems = [*report.lint_issues, *(f"unknown option {k} (misspelt, or removed in this Airflow version)" for k in report.unknown_keys)]
    if problems:
        raise AirflowCheckError(f"{origin}: Airflow rejects the generated airflow.cfg:\n  - " + "\n  - ".join(problems))
    return report


def check_pod_template(env: AirflowEnvironment, template_text: str, origin: str) -> dict[str, object]:
    """Load the pod template with the provider's loader; the first container must be `base`."""
    with tempfile.TemporaryDirectory(prefix="airflow-home-") as tmp:
        home = Path(tmp)
        path = home / "pod_template.yaml"
        path.write_text(template_text)
        result = _run(env, [str(env.python), "-c", _POD_TEMPLATE_SCRIPT, str(path)], home)
    if result.returncode != 0:
        raise AirflowCheckError(f"{origin}: the cncf-kubernetes provider cannot load the pod template:\n{result.stderr.strip()[-2000:]}")
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    if not loaded["containers"] or loaded["containers"][0] != "base":
        raise AirflowCheckError(f"{origin}: the KubernetesExecutor needs the task container first and named 'base', found {loaded['containers']}")
    return loaded
