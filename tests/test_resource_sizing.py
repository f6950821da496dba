"""Pods hold the concurrency they are configured for: the compile refuses a LocalExecutor scheduler
or a Celery worker whose memory limit cannot hold its task slots (the pod's own memory + slots x
sizing.task_memory, figures measured with `airflow-gitops up`), and a per-DAG cap above what the
schedulers run at once; each message names the target file, the key and both ways out. The
profiles' defaults pass; the mapped-DAG run in tests/test_up.py is the rule's proof at run time."""

from __future__ import annotations

import pytest
import yaml

from conftest import REPO, assert_compile_refuses, compile_in

DEV = "inventory/targets/dev.yml"
DEV_CLASSES = yaml.safe_load((REPO / DEV).read_text())["classes"]
CELERY_CLASSES = [c.replace("airflow.executor.local", "airflow.executor.celery") for c in DEV_CLASSES] + ["airflow.logs.pvc"]


def write_dev(root, airflow: dict, classes: list[str] = DEV_CLASSES) -> None:
    """dev's target with `airflow` as its parameters (a claim's storage class where logs need one)."""
    claims = {"logs": {"pvc": {"storage_class": "nfs-client"}}} if "airflow.logs.pvc" in classes else {}
    body = {"classes": classes, "parameters": {"airflow": {**claims, **airflow}}}
    (root / DEV).write_text(yaml.safe_dump(body, sort_keys=False))


# (classes, parameters.airflow of dev, key the error names, words it must hold)
REFUSED = {
    "local executor slots over the scheduler limit": (
        DEV_CLASSES, {"config": {"core": {"parallelism": 32}}},
        "parameters.airflow.scheduler.resources.limits.memory",
        '"1536Mi" cannot hold the LocalExecutor\'s 32 task slots ([core] parallelism): each running task is a process in that pod, '
        "so it needs 384Mi (sizing.scheduler_memory) + 32 x 96Mi (sizing.task_memory) = 3456Mi; raise the limit to at least 3456Mi, "
        "or lower parameters.airflow.config.core.parallelism to 12 or less"),
    "local executor slots as a string": (
        DEV_CLASSES, {"config": {"core": {"parallelism": "16"}}},
        "parameters.airflow.scheduler.resources.limits.memory", "16 task slots"),
    "heavier tasks": (
        DEV_CLASSES, {"sizing": {"task_memory": "512Mi"}},
        "parameters.airflow.scheduler.resources.limits.memory", "8 x 512Mi (sizing.task_memory) = 4480Mi"),
    "unbounded local executor": (
        DEV_CLASSES, {"config": {"core": {"parallelism": 0}}},
        "parameters.airflow.config.core.parallelism", "is 0 (no limit) with the LocalExecutor"),
    "celery concurrency over the worker limit": (
        CELERY_CLASSES, {"celery": {"workers": {"concurrency": 64}}},
        "parameters.airflow.celery.workers.resources.limits.memory",
        "\"4Gi\" cannot hold a Celery worker's 64 task slots (celery.workers.concurrency): each running task is a process in that pod, "
        "so it needs 512Mi (sizing.celery_worker_memory) + 64 x 96Mi (sizing.task_memory) = 6656Mi; raise the limit to at least 6656Mi, "
        "or lower parameters.airflow.celery.workers.concurrency to 37 or less"),
    "per-dag cap above what the schedulers run": (
        DEV_CLASSES, {"config": {"core": {"max_active_tasks_per_dag": 12}}},
        "parameters.airflow.config.core.max_active_tasks_per_dag",
        "12 is more than the 8 tasks the environment runs at once ([core] parallelism 8 x 1 scheduler): lower it to at most 8"),
    "sizing in the wrong unit": (
        DEV_CLASSES, {"sizing": {"task_memory": "64MB"}},
        "parameters.airflow.sizing.task_memory", "64MB"),
    "misspelt sizing key": (
        DEV_CLASSES, {"sizing": {"task_memry": "64Mi"}},
        "parameters.airflow.sizing", "task_memry"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_memory_that_cannot_hold_the_task_slots_is_refused(case, scratch_repo):
    classes, airflow, key, words = REFUSED[case]
    assert_compile_refuses(scratch_repo, lambda: write_dev(scratch_repo, airflow, classes), DEV, key, words)


@pytest.mark.parametrize("airflow", [
    # More slots with the limit the message asks for.
    {"config": {"core": {"parallelism": 32}}, "scheduler": {"resources": {"limits": {"cpu": "1", "memory": "3456Mi"}}}},
    # Fewer slots than the profile's.
    {"config": {"core": {"parallelism": 4, "max_active_tasks_per_dag": 4}}},
], ids=["raised limit", "fewer slots"])
def test_slots_that_fit_compile(airflow, scratch_repo):
    write_dev(scratch_repo, airflow)
    result = compile_in(scratch_repo, "-t", "dev")
    assert result.returncode == 0, result.stdout[-1500:] + result.stderr[-1500:]


def test_celery_workers_at_the_default_concurrency_fit_their_default_limit(scratch_repo):
    write_dev(scratch_repo, {}, CELERY_CLASSES)
    result = compile_in(scratch_repo, "-t", "dev")
    assert result.returncode == 0, result.stdout[-1500:] + result.stderr[-1500:]
