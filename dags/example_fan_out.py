"""Dynamic task mapping: reprocess one day of click events split into partitions, one mapped task
instance per partition, then merge their counts.

Every mapped instance is a task of its own for the executor: with 16 partitions, up to
min(16, max_active_tasks_per_dag, parallelism) of them run at once, each in its own process (a
LocalExecutor worker in the scheduler's pod, a slot of a Celery worker, or a pod of its own). That
is what a platform sizes its pods for; trigger it with {"partitions": N} to try a fan-out of N.
"""

from __future__ import annotations

import time

import pendulum
from airflow.sdk import Param, dag, task


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "mapping"],
    params={"partitions": Param(16, type="integer", minimum=1, maximum=256),
            "seconds_per_partition": Param(20, type="integer", minimum=0, maximum=600)},
    default_args={"retries": 1},
)
def example_fan_out():
    @task
    def list_partitions(params=None) -> list[int]:
        return list(range(params["partitions"]))

    @task
    def reprocess(partition: int, params=None) -> int:
        # Stands in for reading and rewriting one partition: it holds its slot for a while, as real
        # partitions do, so the instances overlap.
        time.sleep(params["seconds_per_partition"])
        return 1000 + partition

    @task
    def merge(counts: list[int]) -> None:
        print(f"reprocessed {len(counts)} partitions, {sum(counts)} events")

    merge(reprocess.expand(partition=list_partitions()))


example_fan_out()
