"""A small daily TaskFlow ETL: extract orders, total them per day, load the summary."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task


@dag(
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "etl"],
    default_args={"retries": 2},
)
def example_etl():
    @task
    def extract() -> list[dict[str, float]]:
        return [{"order": 1, "amount": 12.5}, {"order": 2, "amount": 30.0}]

    @task
    def transform(orders: list[dict[str, float]]) -> float:
        return sum(o["amount"] for o in orders)

    @task
    def load(total: float) -> None:
        print(f"daily order total: {total:.2f}")

    load(transform(extract()))


example_etl()
