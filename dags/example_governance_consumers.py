"""Examples of a team's own DAGs scheduled on mlwatch's governance assets.

mlwatch emits `mlwatch/retrain/<model>` when an alert's playbook asks for retraining
and `mlwatch/rollback/<model>` when someone runs `mlwatch rollback`. These two DAGs,
for the demo model card_fraud, show the wiring: replace the task bodies with the call
to your training pipeline or deployment system.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, dag, task

START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


@dag(dag_id="example_retrain_card_fraud", schedule=[Asset("mlwatch/retrain/card_fraud")], start_date=START,
     catchup=False, tags=["mlwatch", "example"], default_args={"owner": "mlwatch"}, doc_md=__doc__)
def example_retrain_card_fraud():
    @task
    def retrain(*, triggering_asset_events=None) -> list[dict]:
        requests = [event.extra for events in (triggering_asset_events or {}).values() for event in events]
        for request in requests:
            print(f"retrain {request['model']} because: {request['reason']} (alert {request['alert_id']})")
        return requests

    retrain()


@dag(dag_id="example_rollback_card_fraud", schedule=[Asset("mlwatch/rollback/card_fraud")], start_date=START,
     catchup=False, tags=["mlwatch", "example"], default_args={"owner": "mlwatch"}, doc_md=__doc__)
def example_rollback_card_fraud():
    @task
    def roll_back(*, triggering_asset_events=None) -> list[dict]:
        orders = [event.extra for events in (triggering_asset_events or {}).values() for event in events]
        for order in orders:
            print(f"deploy {order['model']} {order['to_version']} instead of {order['from_version']}: {order['reason']}")
        return orders

    roll_back()


example_retrain_card_fraud()
example_rollback_card_fraud()
