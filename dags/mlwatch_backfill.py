"""mlwatch_backfill: the warehouse of nightly runs for every day start..end, in one pass,
with the alerts each night would have raised (the backtest: never sent; those still open
on `end` are told once).

Triggered by hand with params `start` and `end`. Equivalent to `mlwatch backfill`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, task

FEEDS = ("predictions", "labels", "costs", "stages")
DATE = {"type": "string", "format": "date"}


@dag(
    dag_id="mlwatch_backfill",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "mlwatch", "pool": "duckdb_writer", "retries": 0},
    params={
        "start": Param(**DATE, description="First day (YYYY-MM-DD)"),
        "end": Param(**DATE, description="Last day (YYYY-MM-DD)"),
    },
    tags=["mlwatch"],
    doc_md=__doc__,
)
def mlwatch_backfill():
    @task
    def ingest(feed: str, params=None) -> dict:
        from mlwatch import orchestration

        start, end = dt.date.fromisoformat(params["start"]), dt.date.fromisoformat(params["end"])
        return orchestration.ingest_feed(feed, end, reread_from=start)

    @task(trigger_rule="all_done")
    def backtest(params=None) -> dict:
        from mlwatch import orchestration

        return orchestration.backtest(dt.date.fromisoformat(params["start"]), dt.date.fromisoformat(params["end"]))

    @task
    def build(params=None) -> dict:
        from mlwatch import orchestration

        return orchestration.build(dt.date.fromisoformat(params["end"]), dt.date.fromisoformat(params["start"]),
                                   statistics=False)

    @task
    def evaluate_alerts(params=None) -> dict:
        from mlwatch import orchestration

        return orchestration.evaluate_alerts(dt.date.fromisoformat(params["end"]), backtest=True)

    @task
    def notify(params=None) -> dict:
        from mlwatch import orchestration

        return orchestration.notify(dt.date.fromisoformat(params["end"]))

    # A leaf that needs every feed loaded: when one failed, the run ends failed
    # (after the rest of the night ran) instead of looking green.
    @task(pool="default_pool")
    def all_feeds_loaded(summaries: list[dict]) -> dict:
        return dict(zip(FEEDS, summaries))

    loads = [ingest.override(task_id=f"ingest_{feed}")(feed) for feed in FEEDS]
    replayed = backtest()
    for load in loads:
        load >> replayed
    replayed >> build() >> evaluate_alerts() >> notify()
    all_feeds_loaded(loads)


mlwatch_backfill()
