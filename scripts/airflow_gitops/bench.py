"""`make bench`: times the edit-compile-validate loop (compiles in a temporary copy).

Figures: validate (this repository's 3 environments warm and as a fresh clone's first run, and 50
environments), sync-dags against plain git, a full compile of the repository plus N generated
environments (first compile, which also generates their refs, and a steady-state recompile), a
single-environment compile, the one-target edit, and at
fleet size (200 environments) the full compile, its peak memory and the one-target edit. Given a
Helm SDK renderer (--helm-renderer, --helm-chart), the full compiles are compared with the official
chart rendered as many times.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .kapitan_runner import copy_compile_inputs, kapitan_executable
from .processes import descendants, running
from .repo import find_root
from .venvs import cache_dir

def _timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"bench: {' '.join(command)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return elapsed


def run(extra_environments: int, repeats: int) -> dict[str, float]:
    """`make compile`'s step (airflow-gitops compile: kapitan compile into a scratch directory,
    then compiled/ updated file by file), and a plain `kapitan compile` in this shell."""
    root = find_root()
    ours = [str(Path(sys.executable).with_name("airflow-gitops")), "compile"]
    plain = [kapitan_executable(), "compile"]
    with tempfile.TemporaryDirectory(prefix="airflow-gitops-bench-") as tmp:
        work = Path(tmp)
        copy_compile_inputs(root, work)
        figures = {
            "single": statistics.median(_timed([*ours, "--target", "dev"], work) for _ in range(repeats)),
            "plain single": statistics.median(_timed([*plain, "-t", "dev"], work) for _ in range(repeats)),
        }
        template = (work / "inventory" / "targets" / "staging.yml").read_text()
        for i in range(extra_environments):
            (work / "inventory" / "targets" / f"bench-{i:03d}.yml").write_text(template)
        figures["first"] = _timed(ours, work)
        figures["steady"] = statistics.median(_timed([*ours, "--all"], work) for _ in range(repeats))
        figures["one edit"] = _one_target_edited(work, ours, repeats)
        figures["plain steady"] = statistics.median(_timed(plain, work) for _ in range(repeats))
        figures.update(_diff_after_a_class_change(work, ours, repeats))
    return figures


def run_fleet_compile(extra_environments: int, repeats: int) -> dict[str, float]:
    """At fleet size: a full compile (its time and peak memory) and the one-target edit."""
    root = find_root()
    ours = [str(Path(sys.executable).with_name("airflow-gitops")), "compile"]
    with tempfile.TemporaryDirectory(prefix="airflow-gitops-bench-") as tmp:
        work = Path(tmp)
        copy_compile_inputs(root, work)
        template = (work / "inventory" / "targets" / "staging.yml").read_text()
        for i in range(extra_environments):
            (work / "inventory" / "targets" / f"bench-{i:03d}.yml").write_text(template)
        _timed(ours, work)  # generates the refs
        runs = [_peak_memory([*ours, "--all"], work) for _ in range(repeats)]
        return {"full": statistics.median(t for t, _ in runs), "peak": max(m for _, m in runs),
                "one edit": _one_target_edited(work, ours, repeats)}


def _peak_memory(command: list[str], cwd: Path) -> tuple[float, int]:
    """Seconds `command` took and the peak of the resident sizes of it and its descendants (Kapitan
    and its workers), summed every 20 ms (pages they share are counted in each)."""
    page = os.sysconf("SC_PAGE_SIZE")

    def resident(pid: int) -> int:
        try:
            return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            return 0

    start = time.perf_counter()
    peak = 0
    with running(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as process:
        while process.poll() is None:
            peak = max(peak, resident(process.pid) + sum(resident(p) for p in descendants(process.pid)))
            time.sleep(0.02)
        if process.returncode != 0:
            sys.exit(f"bench: {' '.join(command)} failed:\n{process.stderr.read()[-2000:].decode(errors='replace')}")
    return time.perf_counter() - start, peak


def _one_target_edited(work: Path, compile_command: list[str], repeats: int) -> float:
    """The everyday loop at fleet size: one value of one target changed, then `make compile`'s step,
    which compiles that environment and the bootstrap only."""
    target = work / "inventory" / "targets" / "staging.yml"
    original = target.read_text()
    anchor = "        ref: staging\n"
    if anchor not in original:
        sys.exit(f"bench: {target} no longer has {anchor.strip()!r} to change")
    times = []
    for i in range(repeats):
        target.write_text(original.replace(anchor, f"        ref: staging-{i}\n"))
        times.append(_timed(compile_command, work))
    target.write_text(original)
    _timed(compile_command, work)
    return statistics.median(times)


def _diff_after_a_class_change(work: Path, compile_command: list[str], repeats: int) -> dict[str, float]:
    """A reviewer's loop at fleet size: one class changed for every environment (a default of
    airflow.defaults, which changes every airflow.cfg and the checksums of every pod that reads
    it), the compile that produces it, then `airflow-gitops diff` of the two commits."""
    _git("init", "-q", "-b", "main", cwd=work)
    _git("add", "-A", cwd=work)
    _git("-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "before", cwd=work)
    defaults = work / "inventory" / "classes" / "airflow" / "defaults.yml"
    text = defaults.read_text()
    anchor = '        load_examples: "False"\n'
    if anchor not in text:
        sys.exit(f"bench: {defaults} no longer has {anchor.strip()!r} to change")
    defaults.write_text(text.replace(anchor, anchor + "        default_task_retries: 2\n"))
    figures = {"class compile": _timed(compile_command, work)}
    _git("add", "-A", cwd=work)
    _git("-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "after", cwd=work)
    diff = [str(Path(sys.executable).with_name("airflow-gitops")), "diff", "--base", "HEAD~1", "--head", "HEAD"]
    figures["diff"] = statistics.median(_timed(diff, work) for _ in range(repeats))
    return figures


DAG_TEMPLATE = """from airflow.sdk import dag, task
import pendulum


@dag(dag_id="bench_{n}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def bench_{n}():
    @task
    def work():
        return {n}

    work()


bench_{n}()
"""


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def run_sync_bench(files: int, repeats: int) -> dict[str, float]:
    """sync-dags with one changed file among `files`, against plain git doing the same change."""
    root = find_root()
    cli = str(Path(sys.executable).with_name("airflow-gitops"))
    identity = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@e", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@e"}
    with tempfile.TemporaryDirectory(prefix="airflow-gitops-syncbench-") as tmp:
        work = Path(tmp)
        source, bare, clone = work / "src", work / "dags.git", work / "clone"
        for n in range(files):
            path = source / f"team_{n % 50:02d}" / f"dag_{n:05d}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(DAG_TEMPLATE.format(n=n))
        _git("init", "-q", "--bare", "-b", "main", str(bare), cwd=work)
        url = f"file://{bare}"
        env = {**os.environ, "AIRFLOW_GITOPS_SYNC_CACHE": str(work / "cache")}
        args = [cli, "sync-dags", "--target", "dev", "--repo", url, "--branch", "main", "--source", str(source), "--no-import-check"]
        subprocess.run(args, cwd=root, env=env, check=True, capture_output=True)
        _git("clone", "-q", url, str(clone), cwd=work)
        changed = source / "team_07" / "dag_00007.py"

        def edit(i: int) -> None:
            changed.write_text(DAG_TEMPLATE.format(n=7) + f"# edit {i}\n")

        def timed(command) -> float:
            start = time.perf_counter()
            command()
            return time.perf_counter() - start

        ours, floor = [], []
        for i in range(repeats):
            edit(2 * i)
            ours.append(timed(lambda: subprocess.run(args, cwd=root, env=env, check=True, capture_output=True)))
            edit(2 * i + 1)

            def plain_git() -> None:
                _git("pull", "-q", "--ff-only", cwd=clone)
                shutil.copyfile(changed, clone / "dags" / "team_07" / "dag_00007.py")
                _git("add", "-A", cwd=clone)
                subprocess.run(["git", "commit", "-qm", "edit"], cwd=clone, check=True, capture_output=True, env={**os.environ, **identity})
                _git("push", "-q", "origin", "HEAD:main", cwd=clone)

            floor.append(timed(plain_git))
            _git("pull", "-q", "--ff-only", cwd=clone)
        return {"ours": statistics.median(ours), "floor": statistics.median(floor)}


def run_validate_bench(repeats: int) -> dict[str, float]:
    """`airflow-gitops validate` on this repository (three environments and the bootstrap), once
    its Airflow and checkov environments exist (a first, untimed run creates them)."""
    root = find_root()
    cli = [str(Path(sys.executable).with_name("airflow-gitops")), "validate", "--quiet", "--json"]
    subprocess.run(cli, cwd=root, capture_output=True)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = subprocess.run(cli, cwd=root, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            sys.exit(f"bench: validate failed:\n{result.stdout[-3000:]}")
    return {"median": statistics.median(times)}


def _copy_for_validate(root: Path, work: Path) -> None:
    """What validate reads besides compiled/: the compile's inputs, the DAGs and checkov's settings."""
    copy_compile_inputs(root, work)
    shutil.copytree(root / "dags", work / "dags")
    shutil.copy2(root / ".checkov.yaml", work / ".checkov.yaml")


def run_first_validate_bench() -> float:
    """`airflow-gitops validate` as a fresh clone's first run after `make compile`: a copy of this
    repository, with empty tool-environment and uv download caches (the Airflow and checkov
    virtualenvs are installed, downloads included)."""
    root = find_root()
    with tempfile.TemporaryDirectory(prefix="airflow-gitops-firstbench-") as tmp:
        work = Path(tmp) / "repository"
        work.mkdir()
        _copy_for_validate(root, work)
        shutil.copytree(root / "compiled", work / "compiled")
        env = {**os.environ, "AIRFLOW_GITOPS_CACHE": str(Path(tmp) / "cache"), "UV_CACHE_DIR": str(Path(tmp) / "uv-cache")}
        env.pop("AIRFLOW_GITOPS_INSTALLER", None)
        start = time.perf_counter()
        result = subprocess.run([str(Path(sys.executable).with_name("airflow-gitops")), "validate", "--quiet", "--json"],
                                cwd=work, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            sys.exit(f"bench: the first validate failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return elapsed


def run_fleet_validate_bench(extra_environments: int, repeats: int) -> dict[str, float]:
    """`airflow-gitops validate`, every check, on a copy of this repository with `extra_environments`
    more environments (staging's target with its own URL and DAG ref, as `new-env` gives), once the
    tool environments exist and the copy has been validated once (the Airflow check remembers
    the configuration texts it accepted)."""
    root = find_root()
    cli = [str(Path(sys.executable).with_name("airflow-gitops"))]
    env = {**os.environ, "AIRFLOW_GITOPS_CACHE": str(cache_dir(root))}
    with tempfile.TemporaryDirectory(prefix="airflow-gitops-fleetbench-") as tmp:
        work = Path(tmp)
        _copy_for_validate(root, work)
        template = (work / "inventory" / "targets" / "staging.yml").read_text()
        for i in range(extra_environments):
            name = f"bench-{i:03d}"
            own = template.replace("//airflow-staging.", f"//airflow-{name}.").replace("ref: staging\n", f"ref: {name}\n")
            (work / "inventory" / "targets" / f"{name}.yml").write_text(own)
        for command in ([*cli, "compile"], [*cli, "validate", "--quiet", "--json"]):
            result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
            if result.returncode != 0:
                sys.exit(f"bench: {' '.join(command[1:])} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = subprocess.run([*cli, "validate", "--quiet", "--json"], cwd=work, env=env, capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            if result.returncode != 0:
                sys.exit(f"bench: validate of the fleet failed:\n{result.stdout[-3000:]}")
    return {"median": statistics.median(times)}


def _helm_renders(args: argparse.Namespace, count: int, repeats: int) -> float | None:
    """The official chart rendered `count` times in one process (start-up and chart loading
    included, as the compile's figure includes Kapitan's), median of `repeats`; None without a
    renderer. No Helm is installed by this repository: the README says how one was built."""
    if not (args.helm_renderer and args.helm_chart):
        return None
    return statistics.median(_timed([str(args.helm_renderer), str(args.helm_chart), str(count)], Path.cwd()) for _ in range(repeats))


def _against_helm(ours: float, helm: float | None, count: int) -> str:
    if helm is None:
        return "the official chart rendered as many times: not measured (--helm-renderer, --helm-chart)"
    return f"the official chart rendered {count} times in one process with the Helm SDK: {helm:.2f} s ({ours / helm:.2f}x; aim: 0.8x)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airflow-gitops-bench", description=__doc__)
    parser.add_argument("--environments", type=int, default=47, help="generated on top of the 3 committed ones")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fleet", type=int, default=197, help="generated environments of the fleet-size compile (0: skip it)")
    parser.add_argument("--dag-files", type=int, default=5000)
    parser.add_argument("--helm-renderer", type=Path,
                        help="a program rendering a chart N times in one process with the Helm SDK, run as RENDERER CHART N")
    parser.add_argument("--helm-chart", type=Path, help="the official Airflow chart (an unpacked release) for --helm-renderer")
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--skip-sync", action="store_true")
    parser.add_argument("--skip-validate", action="store_true")
    args = parser.parse_args(argv)
    if bool(args.helm_renderer) != bool(args.helm_chart):
        parser.error("--helm-renderer and --helm-chart go together")
    if not args.skip_validate:
        figures = run_validate_bench(args.repeats)
        print(f"airflow-gitops validate, 3 environments and the bootstrap, {os.cpu_count()} cores, "
              f"median of {args.repeats}: {figures['median']:.1f} s (aim: 12 s)")
        print(f"airflow-gitops validate, a fresh clone's first run (installs its virtualenvs, empty download cache): "
              f"{run_first_validate_bench():.1f} s (aim: 60 s)")
    if not args.skip_validate and args.environments:
        fleet = run_fleet_validate_bench(args.environments, args.repeats)
        print(f"airflow-gitops validate, every check, {args.environments + 3} environments and the bootstrap, warm, "
              f"median of {args.repeats}: {fleet['median']:.1f} s (aim: 60 s)")
    if not args.skip_sync:
        # Single runs of a fraction of a second swing with the machine: at least 9 of each.
        sync_repeats = max(9, args.repeats)
        sync = run_sync_bench(args.dag_files, sync_repeats)
        print(f"sync-dags, {args.dag_files} DAG files, one changed (--no-import-check), median of {sync_repeats}: "
              f"{sync['ours']:.2f} s; plain git pull/copy/add/commit/push: {sync['floor']:.2f} s "
              f"({sync['ours'] / sync['floor']:.2f}x; aim: 1.3x)")
    if args.skip_compile:
        return 0
    figures = run(args.environments, args.repeats)
    total = args.environments + 3
    helm = _helm_renders(args, args.environments + 3, args.repeats)
    shell = ", ".join(f"{name}={os.environ[name]}" for name in ("RUST_BACKTRACE", "RUST_LIB_BACKTRACE", "GOGC") if name in os.environ)
    print(f"one environment, make compile's step (airflow-gitops compile --target dev), median of {args.repeats}: "
          f"{figures['single']:.2f} s; plain kapitan compile -t dev: {figures['plain single']:.2f} s")
    print(f"{total} environments, first compile (generates {args.environments} sets of refs): {figures['first']:.2f} s")
    print(f"{total} environments, recompile, make compile's step (airflow-gitops compile --all), median of {args.repeats}: "
          f"{figures['steady']:.2f} s; {_against_helm(figures['steady'], helm, total)}")
    print(f"{total} environments, one target edited (a DAG ref of staging), make compile's step (airflow-gitops compile: "
          f"staging and the bootstrap), median of {args.repeats}: {figures['one edit']:.2f} s")
    print(f"{total} environments, recompile, plain kapitan compile in this shell ({shell or 'no runtime settings'}), "
          f"median of {args.repeats}: {figures['plain steady']:.2f} s")
    print(f"{total} environments, one class changed: airflow-gitops diff of the two commits, median of {args.repeats}: "
          f"{figures['diff']:.2f} s; the compile that produced the change: {figures['class compile']:.2f} s "
          f"({figures['diff'] / figures['class compile']:.2f}x; aim: well under the compile)")
    if args.fleet:
        fleet = run_fleet_compile(args.fleet, args.repeats)
        size = args.fleet + 3
        helm = _helm_renders(args, size, args.repeats)
        print(f"{size} environments, full compile (airflow-gitops compile --all), median of {args.repeats}: {fleet['full']:.2f} s; "
              f"{_against_helm(fleet['full'], helm, size)}")
        print(f"{size} environments, full compile: peak memory (resident sizes of it, Kapitan and its workers, summed): {fleet['peak'] / 2**20:,.0f} MiB (aim: < 1,536 MiB)")
        print(f"{size} environments, one target edited, make compile's step, median of {args.repeats}: {fleet['one edit']:.2f} s (aim: 2.0 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
