"""Checks DAG sources before they are published: syntax, then an import with Airflow's DagBag.

The import runs in the isolated virtualenv of the Airflow version the environment deploys, plus
the DAGs' own requirements, in parallel processes, and results are cached by content: a DAG whose
bytes (and whose helper modules) did not change is not imported again.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ..errors import AirflowGitopsError
from ..progress import Progress
from .source import SourceFiles, blob_id

if TYPE_CHECKING:
    from ..airflow_env import AirflowEnvironment

# Runs inside the Airflow virtualenv: one DagBag per file, so an error names its file.
_IMPORT_SCRIPT = r"""
import json, sys, os, warnings, logging
warnings.simplefilter("ignore")
logging.disable(logging.CRITICAL)
from airflow.dag_processing.dagbag import DagBag
root = sys.argv[1]
results = {}
for relative in sys.argv[2:]:
    bag = DagBag(dag_folder=os.path.join(root, relative), safe_mode=False)  # examples: off via the env
    errors = {os.path.relpath(k, root): str(v).strip() for k, v in bag.import_errors.items()}
    results[relative] = {"dag_ids": sorted(bag.dag_ids), "errors": errors}
print("@@RESULT@@" + json.dumps(results))
"""


class DagCheckError(AirflowGitopsError):
    """One or more DAG files were refused."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("DAG check failed:\n  " + "\n  ".join(problems))


class CheckReport(NamedTuple):
    checked: int = 0
    imported: int = 0
    cached: int = 0
    dag_ids: dict[str, list[str]] = {}  # never mutated


def _syntax_error(args: tuple[str, str, str]) -> str | None:
    root, relative, digest = args
    path = Path(root) / relative
    try:
        content = path.read_bytes()
        if blob_id(content) != digest:  # what passes must be exactly what is published
            return f"{relative}: changed while it was being checked: run sync-dags again"
        compile(content, str(path), "exec", dont_inherit=True)
    except SyntaxError as error:
        return f"{relative}:{error.lineno}: syntax error: {error.msg}"
    except ValueError as error:  # null bytes and the like
        return f"{relative}: cannot be compiled: {error}"
    except (RecursionError, MemoryError):  # expressions nested too deeply for the parser
        return f"{relative}: cannot be compiled: an expression is nested too deeply"
    except FileNotFoundError:
        return f"{relative}: removed while it was being checked: run sync-dags again"
    return None


def check_syntax(root: Path, files: SourceFiles, workers: int, cache_dir: Path | None = None) -> list[str]:
    """file:line of every syntax error; contents that compiled before are not compiled again."""
    known_good_file = cache_dir / f"syntax-ok-py{sys.version_info[0]}{sys.version_info[1]}.txt" if cache_dir else None
    remembered = known_good_file.read_text().split() if known_good_file and known_good_file.is_file() else []
    known_good = set(remembered)
    todo = sorted(path for path, digest in files.items() if digest not in known_good and path.endswith(".py"))
    python = [(str(root), path, files[path]) for path in todo]
    if len(python) < 64:
        results = list(map(_syntax_error, python))
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers) as pool, Progress("checking syntax", len(python)) as progress:
            results = []
            for result in pool.map(_syntax_error, python, chunksize=64):
                results.append(result)
                progress.advance()
    good = [files[path] for path, r in zip(todo, results) if r is None]
    if known_good_file and len(remembered) > max(20_000, 4 * len(files)):
        # Bounded: past that, only what the current sources use is kept (others are checked again).
        keep = sorted({d for d in files.values() if d in known_good} | set(good))
        tmp = known_good_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text("\n".join(keep) + "\n")
        tmp.replace(known_good_file)
    elif known_good_file and good:
        # Appended, not rewritten: an edit costs one line; concurrent runs at worst add duplicates.
        known_good_file.parent.mkdir(parents=True, exist_ok=True)
        with open(known_good_file, "a") as known:
            known.write("\n".join(good) + "\n")
    return [r for r in results if r]


def _looks_like_dag_file(path: Path) -> bool:
    # Airflow's own safe-mode heuristic: only files mentioning both words define DAGs.
    content = path.read_bytes().lower()
    return b"airflow" in content and b"dag" in content


def _cache_key(env: AirflowEnvironment, helpers_digest: str, digest: str) -> str:
    return hashlib.sha256(f"{env.path.name}\n{helpers_digest}\n{digest}".encode()).hexdigest()


def _import_chunk(env: AirflowEnvironment, root: Path, chunk: list[str]) -> dict[str, dict]:
    import tempfile  # only when something is imported: the edit loop's common path does not pay for it

    with tempfile.TemporaryDirectory(prefix="airflow-gitops-dagcheck-") as home:
        run_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(root),
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "PYTHONPATH": str(root),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        result = subprocess.run([str(env.python), "-c", _IMPORT_SCRIPT, str(root), *chunk],
                                capture_output=True, text=True, env=run_env, cwd=home)
    marker = [line for line in result.stdout.splitlines() if line.startswith("@@RESULT@@")]
    if result.returncode != 0 or not marker:
        raise AirflowGitopsError(f"the DAG import check itself failed:\n{result.stderr.strip()[-2000:]}")
    return json.loads(marker[-1][len("@@RESULT@@"):])


def check_imports(env: AirflowEnvironment, root: Path, files: SourceFiles, cache_dir: Path,
                  workers: int) -> CheckReport:
    """Import every DAG file with Airflow's DagBag; refuse import errors and duplicate DAG ids."""
    python = {p: d for p, d in sorted(files.items()) if p.endswith(".py")}
    dag_files = {p: d for p, d in python.items() if _looks_like_dag_file(root / p)}
    helpers = sorted(f"{p}:{d}" for p, d in python.items() if p not in dag_files)
    helpers_digest = hashlib.sha256("\n".join(helpers).encode()).hexdigest()
    cache_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    todo: list[str] = []
    for relative, digest in dag_files.items():
        cached = cache_dir / f"{_cache_key(env, helpers_digest, digest)}.json"
        if cached.is_file():
            results[relative] = json.loads(cached.read_text())
        else:
            todo.append(relative)
    if todo:
        from concurrent.futures import ProcessPoolExecutor

        chunks = [todo[i::workers] for i in range(min(workers, len(todo)))]
        with ProcessPoolExecutor(max_workers=len(chunks)) as pool:
            for chunk_result in pool.map(_import_chunk, [env] * len(chunks), [root] * len(chunks), chunks):
                results.update(chunk_result)
        for relative in todo:
            entry = results[relative]
            if not entry["errors"]:  # failures are re-checked every time, successes are remembered
                cache = cache_dir / f"{_cache_key(env, helpers_digest, dag_files[relative])}.json"
                cache.write_text(json.dumps(entry))
    problems: list[str] = []
    owners: dict[str, str] = {}
    dag_ids: dict[str, list[str]] = {}
    for relative in sorted(results):
        entry = results[relative]
        for path, message in sorted(entry["errors"].items()):
            last = message.strip().splitlines()[-1] if message.strip() else "import failed"
            problems.append(f"{path}: import error: {last}")
        for dag_id in entry["dag_ids"]:
            if dag_id in owners:
                problems.append(f"{relative}: duplicate DAG id {dag_id!r} (also defined in {owners[dag_id]})")
            else:
                owners[dag_id] = relative
        dag_ids[relative] = entry["dag_ids"]
    if problems:
        raise DagCheckError(problems)
    return CheckReport(checked=len(dag_files), imported=len(todo), cached=len(dag_files) - len(todo), dag_ids=dag_ids)
