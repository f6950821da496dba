"""Runs the checks (concurrently: most of their time is spent in child processes) and gathers one
outcome per check and target."""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from .. import inventory
from ..venvs import cache_dir
from ..errors import AirflowGitopsError, InventoryError
from . import (airflow_config, dags_check, inventory_schema, kubernetes_schemas, kustomize_build, secrets_scan,
               security_policy, up_to_date)
from .model import Context, Outcome
from .names import CHECK_NAMES

# In the order of the table; each module has NAME and run(Context) -> {target: Outcome}.
CHECKS: tuple[ModuleType, ...] = (inventory_schema, up_to_date, kubernetes_schemas, kustomize_build,
                                  security_policy, secrets_scan, airflow_config, dags_check)
assert tuple(c.NAME for c in CHECKS) == CHECK_NAMES, "names.CHECK_NAMES must list runner.CHECKS in order"


@dataclass
class Report:
    targets: list[str]
    outcomes: dict[str, dict[str, Outcome]]  # check -> target -> outcome
    seconds: float

    @property
    def ok(self) -> bool:
        return all(o.status != "fail" for per_target in self.outcomes.values() for o in per_target.values())


def context_for(root: Path, environments: list[str] | None, include_bootstrap: bool | None = None) -> Context:
    """Every environment and the bootstrap when none is named; else those named (and the bootstrap
    when asked)."""
    known = inventory.list_targets(root)
    unknown = [e for e in environments or [] if e not in known]
    if unknown:
        raise InventoryError(f"inventory/targets/{unknown[0]}.yml: no such environment (known: {', '.join(known)})")
    if environments is not None and not environments and not include_bootstrap:
        raise InventoryError("nothing to validate: no environment and not the bootstrap")
    ctx = Context(root=root, environments=list(known if environments is None else environments),
                  include_bootstrap=not environments if include_bootstrap is None else include_bootstrap)
    try:  # every environment from one kapitan call
        every = inventory.all_target_parameters(root, cache_dir(root))
    except AirflowGitopsError as error:  # reclass-rs renders all targets or none: each is told why
        ctx.parameters.update((env, None) for env in ctx.environments)
        ctx.inventory_errors.update((env, str(error)) for env in ctx.environments)
        return ctx
    for env in ctx.environments:
        try:
            params = inventory.airflow_of(env, every[env])
        except AirflowGitopsError as error:
            ctx.parameters[env] = None
            ctx.inventory_errors[env] = str(error)
            continue
        ctx.parameters[env] = params
        try:  # references to other environments, which the schema cannot check
            inventory.promoted_from(root, env, params)
            inventory.promotion_source(root, env, params)
        except InventoryError as error:
            ctx.inventory_errors[env] = str(error)
    return ctx


def _run_one(check: ModuleType, ctx: Context) -> dict[str, Outcome]:
    try:
        outcomes = check.run(ctx)
    except Exception as error:  # a crashed check fails, with its reason, rather than stopping the others
        reason = f"the check could not run: {type(error).__name__}: {error}"
        return {t: Outcome.failed([reason]) for t in ctx.targets}
    return {t: outcomes.get(t, Outcome.skipped("does not apply")) for t in ctx.targets}


# Checks that cover every environment even with --changed: a change of the inventory that was not
# compiled, or of dags/, leaves compiled/ as it was, and only these would notice (the DAG check
# remembers what it imported, so unchanged DAGs cost little).
WHOLE_REPOSITORY_CHECKS = ("inventory", "up-to-date", "dags")


def _narrowed(ctx: Context, environments: list[str]) -> Context:
    """The same context for some of its environments (and the bootstrap)."""
    return Context(root=ctx.root, environments=environments, include_bootstrap=ctx.include_bootstrap,
                   parameters={e: ctx.parameters[e] for e in environments},
                   inventory_errors={e: r for e, r in ctx.inventory_errors.items() if e in environments})


def _unchanged(ctx: Context, outcomes: dict[str, Outcome], why: str) -> dict[str, Outcome]:
    return {t: outcomes.get(t, Outcome.skipped(why)) for t in ctx.targets}


def validate(root: Path, environments: list[str] | None = None, checks: list[str] | None = None,
             progress=sys.stderr, include_bootstrap: bool | None = None,
             changed: tuple[list[str], str] | None = None) -> Report:
    """Run the checks. `changed`: (the environments whose compiled output changed, the revision it
    changed from): WHOLE_REPOSITORY_CHECKS still cover every environment, the others only those
    (and the bootstrap)."""
    start = time.perf_counter()
    ctx = context_for(root, environments, include_bootstrap)
    chosen = [c for c in CHECKS if not checks or c.NAME in checks]
    narrow = _narrowed(ctx, [e for e in ctx.environments if e in changed[0]]) if changed is not None else ctx
    outcomes: dict[str, dict[str, Outcome]] = {}
    with ThreadPoolExecutor(max_workers=len(chosen)) as pool:
        futures = {pool.submit(_run_one, check, ctx if check.NAME in WHOLE_REPOSITORY_CHECKS else narrow): check
                   for check in chosen}
        for done, future in enumerate(as_completed(futures), 1):
            check = futures[future]
            outcomes[check.NAME] = future.result()
            if changed is not None:
                outcomes[check.NAME] = _unchanged(ctx, outcomes[check.NAME],
                                                  f"compiled output unchanged since {changed[1]}")
            failed = [t for t, o in outcomes[check.NAME].items() if o.status == "fail"]
            if progress is not None:
                state = f"FAIL ({', '.join(failed)})" if failed else "ok"
                progress.write(f"validate [{done}/{len(chosen)}] {check.NAME}: {state} ({time.perf_counter() - start:.1f} s)\n")
                progress.flush()
    ordered = {c.NAME: outcomes[c.NAME] for c in chosen}
    return Report(ctx.targets, ordered, time.perf_counter() - start)
