"""Check 7: each environment's generated airflow.cfg is read, every option the way Airflow reads it,
and passes `airflow config lint` with the Airflow version it deploys (and has no option that
version does not know), and the KubernetesExecutor pod template loads with the cncf-kubernetes
provider's own loader."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from .. import airflow_checks, config_options
from ..airflow_env import ensure_airflow
from ..errors import AirflowCheckError
from .model import BOOTSTRAP, Context, Outcome

NAME = "airflow"


def check_environment(ctx: Context, env: str) -> Outcome:
    params = ctx.parameters.get(env)
    if not params:
        return Outcome.skipped("the inventory cannot be read")
    manifests = ctx.compiled / env / "manifests"
    config = airflow_checks.find_manifest(manifests, "configmap-airflow-config.yaml")
    if config is None:
        return Outcome.failed([f"compiled/{env}/manifests: no airflow.cfg ConfigMap; run `make compile`"])
    airflow = ensure_airflow(ctx.root, params["version"])
    reasons = []
    # How Airflow's code reads each option, recorded per version (the compile's own check reads it too).
    kinds = config_options.options_file(ctx.root, params["version"])
    try:
        airflow_checks.check_airflow_cfg(airflow, airflow_checks.extract_configmap_file(config, "airflow.cfg"),
                                         f"compiled/{env}: airflow.cfg", options_file=kinds if kinds.is_file() else None)
    except AirflowCheckError as error:
        reasons.append(str(error))
    template = airflow_checks.find_manifest(manifests, "configmap-airflow-pod-template.yaml")
    if template is not None:
        try:
            airflow_checks.check_pod_template(airflow, airflow_checks.extract_configmap_file(template, "pod_template.yaml"),
                                              f"compiled/{env}: pod_template.yaml")
        except AirflowCheckError as error:
            reasons.append(str(error))
    return Outcome.failed(reasons)


def run(ctx: Context) -> dict[str, Outcome]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = dict(zip(ctx.environments, pool.map(lambda e: check_environment(ctx, e), ctx.environments)))
    if ctx.include_bootstrap:
        outcomes[BOOTSTRAP] = Outcome.skipped("not an environment")
    return outcomes
