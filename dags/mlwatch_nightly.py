"""mlwatch_nightly: the nightly run of mlwatch for the day that just ended.

The run with logical date D processes day D (a data-interval timetable: it starts
after D is over). Tasks only call the mlwatch library (include/mlwatch); every task
that writes the DuckDB warehouse runs in the one-slot `duckdb_writer` pool.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import AssetAlias, CronDataIntervalTimetable, Param, dag, task

FEEDS = ("predictions", "labels", "costs", "stages")
WRITER = {"pool": "duckdb_writer", "retries": 1, "retry_delay": dt.timedelta(minutes=5)}


@dag(
    dag_id="mlwatch_nightly",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "mlwatch", **WRITER},
    params={"date": Param(None, type=["null", "string"], description="Process this day instead (YYYY-MM-DD)")},
    tags=["mlwatch"],
    doc_md=__doc__,
)
def mlwatch_nightly():
    @task
    def ingest(feed: str, **context) -> dict:
        from mlwatch import orchestration

        return orchestration.ingest_feed(feed, orchestration.run_date(context))

    # The night goes on when one feed has bad files: build with what did load.
    @task(trigger_rule="all_done")
    def build(**context) -> dict:
        from mlwatch import orchestration

        return orchestration.build(orchestration.run_date(context))

    @task
    def evaluate_alerts(**context) -> dict:
        from mlwatch import orchestration

        return orchestration.evaluate_alerts(orchestration.run_date(context))

    @task
    def notify(**context) -> dict:
        from mlwatch import orchestration

        return orchestration.notify(orchestration.run_date(context))

    # The morning's page shows the night even when Slack could not be reached.
    @task(trigger_rule="all_done")
    def report(**context) -> dict:
        from mlwatch import orchestration

        return orchestration.report(orchestration.run_date(context))

    # Retrain requests of the night's alerts become asset events right away.
    @task(outlets=[AssetAlias("mlwatch_governance_events")], trigger_rule="all_done")
    def emit_governance_events(*, outlet_events=None) -> list[str]:
        from mlwatch import orchestration

        return orchestration.emit_governance_events(outlet_events)

    @task
    def record_emitted(action_ids: list[str]) -> int:
        from mlwatch import orchestration

        return orchestration.record_emitted(action_ids)

    # A leaf that needs every feed loaded: when one failed, the run ends failed
    # (after the rest of the night ran) instead of looking green.
    @task(pool="default_pool")
    def all_feeds_loaded(summaries: list[dict]) -> dict:
        return dict(zip(FEEDS, summaries))

    loads = [ingest.override(task_id=f"ingest_{feed}")(feed) for feed in FEEDS]
    built = build()
    for load in loads:
        load >> built
    alerted = evaluate_alerts()
    built >> alerted >> notify() >> report()
    record_emitted(alerted >> emit_governance_events())
    all_feeds_loaded(loads)


mlwatch_nightly()
