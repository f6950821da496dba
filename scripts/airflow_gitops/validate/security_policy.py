"""Check 5: checkov (offline) on each environment's manifests, with zero failed checks. Checks that
do not apply are skipped in the committed .checkov.yaml, each with a one-line reason."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..venvs import cache_dir, ensure_venv
from .model import BOOTSTRAP, Context, Outcome

NAME = "security-policy"
CHECKOV = "checkov==3.3.30"
CONFIG = ".checkov.yaml"


@dataclass
class Findings:
    failed: list[dict]
    resources: int
    passed: int


def checkov_executable(root: Path) -> Path:
    env = ensure_venv(cache_dir(root) / "tool-envs" / CHECKOV.replace("==", "-"), [CHECKOV], CHECKOV)
    return env / "bin" / "checkov"


def _json_documents(text: str) -> list[dict]:
    """checkov prints one JSON report per directory group, concatenated (or a list of them)."""
    decoder, documents, position = json.JSONDecoder(), [], 0
    while position < len(text.rstrip()):
        while text[position].isspace():
            position += 1
        document, position = decoder.raw_decode(text, position)
        documents += document if isinstance(document, list) else [document]
    return documents


def scan(root: Path, use_config: bool = True, environments: list[str] | None = None) -> Findings:
    """One checkov run over every environment's manifests (its start-up dominates), or only those of
    `environments`. checkov 3.3 mixes up results when given several -d directories whose files share
    names, so it scans compiled/ and skips what is not an environment's manifests to check."""
    args = [str(checkov_executable(root)), "--framework", "kubernetes", "--skip-download", "--quiet", "--compact",
            "-o", "json", "-d", "compiled", "--skip-path", "compiled/bootstrap", "--skip-path", "/argocd/",
            "--skip-path", "/flux/"]
    if environments is not None:
        others = sorted(p.name for p in (root / "compiled").iterdir() if p.is_dir() and p.name not in environments)
        for other in others:
            args += ["--skip-path", f"compiled/{re.escape(other)}/"]
    config = root / CONFIG
    if use_config and config.is_file():
        args += ["--config-file", str(config)]
    result = subprocess.run(args, cwd=root, capture_output=True, text=True)
    try:
        reports = _json_documents(result.stdout)
    except json.JSONDecodeError:
        reports = []
    if not reports:
        raise RuntimeError(f"checkov failed (exit {result.returncode}): {result.stderr.strip()[-1500:]}")
    # Reports of several directories can repeat a finding.
    unique = {(f["check_id"], f["resource"], f["file_path"]): f for r in reports for f in r.get("results", {}).get("failed_checks", [])}
    failed = list(unique.values())
    resources = sum(r.get("summary", {}).get("resource_count", 0) for r in reports)
    passed = sum(r.get("summary", {}).get("passed", 0) for r in reports)
    return Findings(failed, resources, passed)


def run(ctx: Context) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    if ctx.include_bootstrap:
        outcomes[BOOTSTRAP] = Outcome.skipped("not an environment's manifests")
    if not ctx.environments:
        return outcomes
    findings = scan(ctx.root, environments=ctx.environments)
    for env in ctx.environments:
        marker = f"compiled/{env}/manifests/"
        reasons = [f"{f['file_path'].lstrip('/')}: {f['check_id']} {f['check_name']}"
                   for f in findings.failed if marker in f["file_path"]]
        outcomes[env] = Outcome.failed(sorted(reasons))
    return outcomes
