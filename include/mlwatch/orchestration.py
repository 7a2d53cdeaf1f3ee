"""What the Airflow DAGs need from mlwatch, without importing Airflow at module level."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from mlwatch import nightly
from mlwatch.config import load_config
from mlwatch.ingest import summarize

WRITER_POOL = os.environ.get("MLWATCH_AIRFLOW_POOL", "duckdb_writer")


def run_date(context: dict[str, Any]) -> dt.date:
    """The day a nightly run processes: params.date, else its logical date (UTC).

    Scheduled runs have logical date = the start of the day they cover; a manual run
    for logical date D processes D too, as `mlwatch run --date D` does.
    """
    params = context.get("params") or {}
    if params.get("date"):
        return dt.date.fromisoformat(str(params["date"]))
    moment = context.get("logical_date") or context["data_interval_start"]
    return moment.astimezone(dt.timezone.utc).date()


def _fail(message: str) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    # Bad data does not get better by retrying: fail the task, let the night go on.
    raise AirflowFailException(message)


def ingest_feed(feed: str, day: dt.date, *, reread_from: dt.date | None = None) -> dict:
    config = load_config()
    results = nightly.step_ingest(config, day, reread_from=reread_from, feeds=(feed,))
    failed = [r for r in results if r.status == "failed"]
    if failed:
        _fail(f"{len(failed)} {feed} partition(s) failed their data checks: "
              + " | ".join(f"dt={r.day}: {r.error}" for r in failed))
    return summarize(results).get(feed, {"partitions": 0})


def build(day: dt.date, first_window_end: dt.date | None = None, *, statistics: bool = True) -> dict:
    # The drift statistics are dbt sources (marts.drift): compute them first, as `mlwatch run` does
    # (a backfill's DAG computed them before its backtest: `statistics=False`).
    config = load_config()
    drift = nightly.step_drift(config, day, first_window_end) if statistics else None
    seconds = nightly.step_build(config, day, first_window_end)
    return {"models": len(seconds), "seconds": round(sum(seconds.values()), 1), "drift_statistics": drift}


def backtest(start: dt.date, end: dt.date) -> dict:
    """A backfill's drift statistics, then its alert backtest (mlwatch.backtest)."""
    config = load_config()
    statistics = nightly.step_drift(config, end, start)
    return {"drift_statistics": statistics, "nights_replayed": nightly.step_backtest(config, start, end)}


def evaluate_alerts(day: dt.date, *, backtest: bool = False) -> dict:
    result = nightly.step_alerts(load_config(), day, backtest=backtest)
    return {"opened": result.opened, "updated": result.updated, "resolved": result.resolved, "digest": result.digest}


def _fail_undelivered(undelivered: list[tuple[str, str, str | None]]) -> None:
    if undelivered:
        # Retrying the task would only wait on Slack; the next run (or `mlwatch deliver`) retries them.
        _fail(f"{len(undelivered)} message(s) could not be delivered and stay in the outbox; the next run "
              "retries them, or `mlwatch deliver` now: " + "; ".join(f"{m} to {c}: {e}" for m, c, e in undelivered))


def notify(day: dt.date) -> dict:
    result = nightly.step_notify(load_config(), day)
    _fail_undelivered(result.undelivered)
    return {"sent": result.sent, "kept_local": result.kept_local}


def report(day: dt.date) -> dict:
    written, undelivered = nightly.step_report(load_config(), day)
    _fail_undelivered(undelivered)
    return {"path": str(written.path), "charts": written.charts, **written.summary}


GOVERNANCE_ALIAS = "mlwatch_governance_events"


def emit_governance_events(outlet_events) -> list[str]:
    """Emit an asset event for every governance action not emitted yet; returns their ids.

    The events belong to the running task; they are marked emitted by the next task
    (record_emitted), once this one has succeeded, so none is lost if it fails.
    """
    from airflow.sdk import Asset, AssetAlias

    from mlwatch import governance
    from mlwatch.warehouse import connect_writer

    config = load_config()
    with connect_writer(config.warehouse) as con:
        pending = governance.pending_events(con)
    for action in pending:
        outlet_events[AssetAlias(GOVERNANCE_ALIAS)].add(Asset(action["asset"]), extra={
            "action_id": action["action_id"], "action": action["action"], "model": action["model_name"],
            "from_version": action["from_version"], "to_version": action["to_version"],
            "reason": action["reason"], "alert_id": action["alert_id"], "actor": action["actor"],
        })
        print(f"emitted {action['asset']} for {action['action']} {action['action_id']}")
    return [a["action_id"] for a in pending]


def record_emitted(action_ids: list[str]) -> int:
    from mlwatch import governance
    from mlwatch.warehouse import connect_writer

    with connect_writer(load_config().warehouse) as con:
        governance.mark_emitted(con, action_ids)
    return len(action_ids)
