"""Check 8: the DAG sources pass sync-dags' own checks (syntax, then an import with Airflow's
DagBag in the Airflow version each environment deploys) without syncing anything."""

from __future__ import annotations

import os

from ..airflow_env import cache_dir, ensure_airflow
from ..dags import check
from ..dags.source import scan
from ..dags.sync import requirements_of
from .model import BOOTSTRAP, Context, Outcome

NAME = "dags"


def run(ctx: Context) -> dict[str, Outcome]:
    source = ctx.root / "dags"
    outcomes: dict[str, Outcome] = {}
    if not source.is_dir():
        outcomes = {env: Outcome.skipped("no dags/ directory") for env in ctx.environments}
    else:
        workers = max(1, os.cpu_count() or 1)
        files = scan(source)
        syntax = check.check_syntax(source, files, workers, cache_dir(ctx.root) / "dag-check")
        by_version: dict[str, Outcome] = {}
        for env in ctx.environments:
            params = ctx.parameters.get(env)
            if syntax:
                outcomes[env] = Outcome.failed(syntax)
                continue
            if not params:
                outcomes[env] = Outcome.skipped("the inventory cannot be read")
                continue
            version = params["version"]
            if version not in by_version:
                airflow = ensure_airflow(ctx.root, version, requirements_of(source))
                try:
                    check.check_imports(airflow, source, files, cache_dir(ctx.root) / "dag-check", workers)
                    by_version[version] = Outcome.ok()
                except check.DagCheckError as error:
                    by_version[version] = Outcome.failed(error.problems)
            outcomes[env] = by_version[version]
    if ctx.include_bootstrap:
        outcomes[BOOTSTRAP] = Outcome.skipped("not an environment")
    return outcomes
