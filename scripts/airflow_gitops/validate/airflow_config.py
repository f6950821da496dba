"""Check 7: each environment's generated airflow.cfg is read, every option the way Airflow reads it,
and passes `airflow config lint` with the Airflow version it deploys (and has no option that
version does not know), and the KubernetesExecutor pod template loads with the cncf-kubernetes
provider's own loader."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .. import airflow_checks, config_options
from ..airflow_env import cache_dir, ensure_airflow
from ..errors import AirflowCheckError
from .model import BOOTSTRAP, Context, Outcome

NAME = "airflow"


def _accepted_key(airflow_path: Path, cfg: str, template: str | None, kinds: Path) -> str:
    """Everything the verdict depends on: the Airflow environment (version, providers), the two
    texts, the recorded option kinds and the scripts that ask Airflow."""
    digest = hashlib.sha256(str(airflow_path.name).encode())
    for part in (cfg, template or "", kinds.read_text() if kinds.is_file() else "",
                 Path(airflow_checks.__file__).read_text()):
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()


def check_environment(ctx: Context, env: str) -> Outcome:
    params = ctx.parameters.get(env)
    if not params:
        return Outcome.skipped("the inventory cannot be read")
    manifests = ctx.compiled / env / "manifests"
    config = airflow_checks.find_manifest(manifests, "configmap-airflow-config.yaml")
    if config is None:
        return Outcome.failed([f"compiled/{env}/manifests: no airflow.cfg ConfigMap; run `make compile`"])
    airflow = ensure_airflow(ctx.root, params["version"])
    # How Airflow's code reads each option, recorded per version (the compile's own check reads it too).
    kinds = config_options.options_file(ctx.root, params["version"])
    template = airflow_checks.find_manifest(manifests, "configmap-airflow-pod-template.yaml")
    try:
        cfg_text = airflow_checks.extract_configmap_file(config, "airflow.cfg")
        template_text = airflow_checks.extract_configmap_file(template, "pod_template.yaml") if template is not None else None
    except AirflowCheckError as error:  # a ConfigMap without its file: nothing to ask Airflow
        return Outcome.failed([str(error)])
    # Airflow takes seconds to start, three times per environment: texts it accepted once (the same
    # bytes, Airflow environment and option kinds) are accepted again without asking. Refusals are
    # never remembered.
    accepted = cache_dir(ctx.root) / "airflow-accepted" / _accepted_key(airflow.path, cfg_text, template_text, kinds)
    if accepted.is_file():
        return Outcome.ok()
    reasons = []
    try:
        airflow_checks.check_airflow_cfg(airflow, cfg_text, f"compiled/{env}: airflow.cfg",
                                         options_file=kinds if kinds.is_file() else None)
    except AirflowCheckError as error:
        reasons.append(str(error))
    if template_text is not None:
        try:
            airflow_checks.check_pod_template(airflow, template_text, f"compiled/{env}: pod_template.yaml")
        except AirflowCheckError as error:
            reasons.append(str(error))
    if not reasons:
        accepted.parent.mkdir(parents=True, exist_ok=True)
        accepted.write_text(f"compiled/{env}\n")
    return Outcome.failed(reasons)


def run(ctx: Context) -> dict[str, Outcome]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = dict(zip(ctx.environments, pool.map(lambda e: check_environment(ctx, e), ctx.environments)))
    if ctx.include_bootstrap:
        outcomes[BOOTSTRAP] = Outcome.skipped("not an environment")
    return outcomes
