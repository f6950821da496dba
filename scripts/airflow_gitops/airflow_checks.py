"""Checks that ask Apache Airflow itself about what we generate: airflow.cfg and the pod template."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .airflow_env import AirflowEnvironment
from .errors import AirflowCheckError

# Runs inside the Airflow virtualenv and reads every option of the file as Airflow does.
# Importing airflow.configuration runs conf.validate() (the enum values), as every Airflow command
# does at start; then each option goes through the getter Airflow's code reads it with (the kinds
# recorded in kapitan/schemas/airflow-config-options/<version>.json, else the description's type),
# which also interpolates it (a lone % fails there, whatever the type). `airflow config lint` does
# neither: a word for an integer stops the scheduler, not the lint. Options Airflow does not
# know are listed too: Airflow itself would silently ignore a misspelt one.
_READ_SCRIPT = """
import configparser, importlib.util, json, os, sys, warnings
warnings.simplefilter("ignore")
MARKER = "airflow-gitops-config-read:"
# The file's own values: an AIRFLOW__* variable of this shell would be read instead of them.
for name in [n for n in os.environ if n.startswith("AIRFLOW__")]:
    del os.environ[name]
report = {"unknown": [], "refused": [], "unchecked": [], "start": None}
try:
    from airflow.configuration import conf
except Exception as error:  # every Airflow command would stop here: enums, engine args, secrets backend...
    report["start"] = str(error)
    print(MARKER, json.dumps(report))
    raise SystemExit(0)
GETTERS = {"boolean": "getboolean", "integer": "getint", "float": "getfloat", "timedelta": "gettimedelta",
           "json": "getjson", "import": "getimport"}
kinds = json.load(open(sys.argv[2]))["sections"] if len(sys.argv) > 2 else {}
described = conf.configuration_description
parser = configparser.ConfigParser(interpolation=None)
parser.read(sys.argv[1])
for section in parser.sections():
    for key in parser.options(section):
        option = described.get(section, {}).get("options", {}).get(key)
        if option is None:
            report["unknown"].append(f"[{section}] {key}")
            continue
        kind = kinds.get(section, {}).get(key, option.get("type"))
        getter = GETTERS.get(kind, "get") if isinstance(kind, str) else "get"
        try:
            if getter == "getimport":
                # A class of a package only the image has (a provider) cannot be imported here.
                module = conf.get(section, key).rpartition(".")[0]
                try:
                    installed = importlib.util.find_spec(module) is not None if module else True
                except ImportError:
                    installed = False
                if not installed:
                    report["unchecked"].append(f"[{section}] {key}: {module} is not installed beside Airflow here")
                    continue
            getattr(conf, getter)(section, key)
        except Exception as error:
            report["refused"].append(f"[{section}] {key} = {parser.get(section, key)!r}: {error}")
print(MARKER, json.dumps(report))
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
    refused: list[str] = field(default_factory=list)  # values Airflow's own reading refuses
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


def _read_options(env: AirflowEnvironment, cfg: Path, home: Path, options_file: Path | None, origin: str) -> dict[str, Any]:
    args = [str(env.python), "-c", _READ_SCRIPT, str(cfg), *([str(options_file)] if options_file else [])]
    result = _run(env, args, home)
    # Airflow may log to stdout too (e.g. an OpenTelemetry exporter at exit): find our line.
    found = [line.split(":", 1)[1] for line in result.stdout.splitlines() if line.startswith("airflow-gitops-config-read:")]
    if result.returncode != 0 or not found:
        raise AirflowCheckError(f"{origin}: could not read the configuration with Airflow:\n"
                                f"{(result.stderr or result.stdout).strip()[-2000:]}")
    return json.loads(found[-1])


def check_airflow_cfg(env: AirflowEnvironment, cfg_text: str, origin: str, options_file: Path | None = None) -> ConfigReport:
    """Every option read as Airflow reads it (`options_file`: the option kinds recorded for this
    Airflow version), `airflow config lint`, and an unknown-key check; raises AirflowCheckError on
    a real problem."""
    report = ConfigReport()
    with tempfile.TemporaryDirectory(prefix="airflow-home-") as tmp:
        home = Path(tmp)
        cfg = home / "airflow.cfg"
        cfg.write_text(cfg_text)
        read = _read_options(env, cfg, home, options_file, origin)
        if read["start"]:  # the lint would stop on the same value, with a traceback
            raise AirflowCheckError(f"{origin}: Airflow refuses to start with the generated airflow.cfg: {read['start']}")
        report.unknown_keys, report.refused = read["unknown"], read["refused"]
        report.notes += [f"not imported: {item}" for item in read["unchecked"]]
        lint = _run(env, [str(env.airflow), "config", "lint"], home)
        if lint.returncode != 0:
            raise AirflowCheckError(f"{origin}: `airflow config lint` failed:\n{lint.stderr.strip()[-2000:]}")
        for line in lint.stdout.splitlines():
            item = line.strip().removeprefix("- ").strip()
            if not line.strip().startswith("- "):
                continue
            # A changed default we set explicitly is information, not a problem.
            (report.notes if item.startswith("Changed default value") else report.lint_issues).append(item)
    problems = [*report.refused, *report.lint_issues,
                *(f"unknown option {k} (misspelt, or removed in this Airflow version)" for k in report.unknown_keys)]
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
