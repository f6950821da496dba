"""Data-aware scheduling with an Asset: `example_asset_producer` publishes the daily order summary
and records it as an asset event; `example_asset_consumer` runs whenever a new summary lands
(schedule=[asset]) instead of guessing when the producer is done with a time schedule of its own.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, dag, task

DAILY_ORDER_SUMMARY = Asset(
    name="daily_order_summary",
    uri="s3://example-data/orders/daily_summary.json",
    group="orders",
)


@dag(
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "assets"],
    default_args={"retries": 2},
)
def example_asset_producer():
    @task
    def summarize() -> dict[str, float]:
        orders = [{"order": 1, "amount": 12.5}, {"order": 2, "amount": 30.0}]
        return {"orders": len(orders), "total": sum(o["amount"] for o in orders)}

    # A successful run of a task with outlets emits an event for each of its assets.
    @task(outlets=[DAILY_ORDER_SUMMARY])
    def publish(summary: dict[str, float], outlet_events=None) -> None:
        # Real code writes the file to DAILY_ORDER_SUMMARY.uri here (e.g. with ObjectStoragePath).
        print(f"publishing {summary} to {DAILY_ORDER_SUMMARY.uri}")
        # Extra travels with the event to every consumer.
        outlet_events[DAILY_ORDER_SUMMARY].extra = summary

    publish(summarize())


@dag(
    schedule=[DAILY_ORDER_SUMMARY],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "assets"],
)
def example_asset_consumer():
    @task(inlets=[DAILY_ORDER_SUMMARY])
    def report(triggering_asset_events=None) -> None:
        for event in triggering_asset_events[DAILY_ORDER_SUMMARY]:
            print(f"new order summary from {event.source_dag_id}: {event.extra}")

    report()


example_asset_producer()
example_asset_consumer()
