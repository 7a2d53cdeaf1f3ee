"""mlwatch_governance: governance actions as Airflow asset events.

Every ten minutes, each rollback (`mlwatch rollback`) and retrain request (an alert
whose playbook says retrain) not emitted yet becomes an event of the asset
`mlwatch/rollback/<model>` or `mlwatch/retrain/<model>`, so a team's own deployment or
training DAG can be scheduled on it (see example_governance_consumers.py). The nightly
run emits at its end too.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import AssetAlias, CronTriggerTimetable, dag, task

ALIAS = "mlwatch_governance_events"


@dag(
    dag_id="mlwatch_governance",
    schedule=CronTriggerTimetable("*/10 * * * *", timezone="UTC"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "mlwatch", "pool": "duckdb_writer", "retries": 1,
                  "retry_delay": dt.timedelta(minutes=2)},
    tags=["mlwatch"],
    doc_md=__doc__,
)
def mlwatch_governance():
    @task(outlets=[AssetAlias(ALIAS)])
    def emit_governance_events(*, outlet_events=None) -> list[str]:
        from mlwatch import orchestration

        return orchestration.emit_governance_events(outlet_events)

    @task
    def record_emitted(action_ids: list[str]) -> int:
        from mlwatch import orchestration

        return orchestration.record_emitted(action_ids)

    record_emitted(emit_governance_events())


mlwatch_governance()
