"""Check 1: each environment's parameters.airflow against kapitan/schemas/airflow.schema.json,
with the file and the key path in every message (the compile's own messages, in Python)."""

from __future__ import annotations

import json

import jsonschema

from .model import BOOTSTRAP, Context, Outcome

NAME = "inventory"


def _path(error: jsonschema.ValidationError) -> str:
    return ".".join(["parameters", "airflow", *(str(p) for p in error.absolute_path)])


def run(ctx: Context) -> dict[str, Outcome]:
    schema = json.loads((ctx.root / "kapitan" / "schemas" / "airflow.schema.json").read_text())
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    outcomes: dict[str, Outcome] = {}
    for env in ctx.environments:
        origin = f"inventory/targets/{env}.yml"
        if env in ctx.inventory_errors:
            outcomes[env] = Outcome.failed([ctx.inventory_errors[env]])
            continue
        errors = sorted(validator.iter_errors(ctx.parameters[env]), key=lambda e: list(map(str, e.absolute_path)))
        outcomes[env] = Outcome.failed([f"{origin}: {_path(e)}: {e.message}" for e in errors])
    if ctx.include_bootstrap:
        outcomes[BOOTSTRAP] = Outcome.skipped("not an environment")
    return outcomes
