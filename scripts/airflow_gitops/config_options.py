"""The airflow.cfg options an Airflow version knows, recorded for the compile-time key check.

Airflow ignores a misspelt `[section] key` silently; the compile refuses it instead, by looking
each key up in `kapitan/schemas/airflow-config-options/<version>.json`, which this module writes
from Airflow's own configuration description (core and the providers in its environment).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .airflow_env import AirflowEnvironment
from .errors import AirflowCheckError

OPTIONS_DIR = Path("kapitan") / "schemas" / "airflow-config-options"

_DESCRIBE_SCRIPT = """
import json, warnings
warnings.simplefilter("ignore")
from airflow.configuration import conf
print(json.dumps({s: sorted(v.get("options", {})) for s, v in conf.configuration_description.items()}))
"""


def describe_options(env: AirflowEnvironment, home: Path) -> dict[str, list[str]]:
    result = subprocess.run(
        [str(env.python), "-c", _DESCRIBE_SCRIPT],
        capture_output=True, text=True, env={"AIRFLOW_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    if result.returncode != 0:
        raise AirflowCheckError(f"could not read Airflow's configuration description:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def render(version: str, sections: dict[str, list[str]]) -> str:
    """Deterministic file content: {section: {option: true}} for constant-time lookups in Jsonnet."""
    document = {
        "airflow_version": version,
        "generated_by": "airflow-gitops config-options",
        "sections": {s: {o: True for o in sorted(opts)} for s, opts in sorted(sections.items())},
    }
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def options_file(root: Path, version: str) -> Path:
    return root / OPTIONS_DIR / f"{version}.json"
