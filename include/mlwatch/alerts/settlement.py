"""Early warnings meet the labels: an estimated_performance_drop is confirmed or withdrawn, once.

An estimate from the scores (marts.performance_estimated) pages before the labels land.
When they land, the labels judge it:
  - confirmed, when a realized performance alert of the same model and metric opens on or
    after the night the estimate did; that alert then continues the estimate's Slack
    thread (thread_alert_id), so that the people who saw the warning see the proof;
  - confirmed, when the realized value of the window that opened it is in (label_delay_days
    after its end) and is beyond the tolerance, though the realized rule did not page;
  - withdrawn, when that realized value is within tolerance. A withdrawn estimate does
    not page again for the same metric within the label horizon (rules.estimated_performance_drop).
An estimate still open when it is settled resolves with the settlement; one already
resolved (the estimate went back within tolerance) is settled in its thread all the same.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from mlwatch.alerts.rules import ESTIMATED_KINDS, REALIZED_DROP_KINDS
from mlwatch.config import Config
from mlwatch.metric_catalog import relative_degradation
from mlwatch.warehouse import table_exists


def settle(con: duckdb.DuckDBPyConnection, config: Config, run_date: dt.date) -> list[str]:
    """Settle the estimated alerts the labels now judge; returns their ids."""
    settled = []
    unsettled = con.execute(
        "SELECT alert_id, model_name, metric, window_days, first_seen, status FROM marts.alerts "
        "WHERE list_contains(?, kind) AND settled_on IS NULL AND first_seen <= ? ORDER BY alert_id",
        [sorted(ESTIMATED_KINDS), run_date]).fetchall()
    for alert_id, name, metric, window_days, first_seen, status in unsettled:
        model = config.models.get(name)
        if model is None:
            continue
        verdict = _realized_alert(con, alert_id, name, metric, first_seen, run_date) or \
            _realized_window(con, model, name, metric, window_days, first_seen)
        if verdict is None:
            continue
        settlement, detail = verdict
        con.execute("UPDATE marts.alerts SET settlement = ?, settled_on = ?, settlement_detail = ? WHERE alert_id = ?",
                    [settlement, run_date, detail, alert_id])
        if status == "open":
            con.execute("UPDATE marts.alerts SET status = 'resolved', resolved_on = ? WHERE alert_id = ?",
                        [run_date, alert_id])
        settled.append(alert_id)
    return settled


def _realized_alert(con, estimate_id: str, name: str, metric: str, since: dt.date,
                    run_date: dt.date) -> tuple[str, str] | None:
    row = con.execute(
        "SELECT alert_id, title, first_seen, delivery FROM marts.alerts WHERE model_name = ? AND metric = ? "
        "AND list_contains(?, kind) AND first_seen BETWEEN ? AND ? ORDER BY first_seen, alert_id LIMIT 1",
        [name, metric, list(REALIZED_DROP_KINDS), since, run_date]).fetchone()
    if row is None:
        return None
    realized_id, title, opened, delivery = row
    if opened == run_date and delivery is None:     # not told yet: it is told in the estimate's thread
        con.execute("UPDATE marts.alerts SET thread_alert_id = ? WHERE alert_id = ?", [estimate_id, realized_id])
    return "confirmed", f"the labels confirm it: {title} (opened {opened.isoformat()})"


def _realized_window(con, model, name: str, metric: str, window_days: int,
                     window_end: dt.date) -> tuple[str, str] | None:
    if not table_exists(con, "marts", "performance_estimated"):
        return None
    row = con.execute(
        "SELECT realized_value, reference_value FROM marts.performance_estimated WHERE model_name = ? AND metric = ? "
        "AND window_days = ? AND window_end = ? AND model_version = '__all__' AND segment = '__all__'",
        [name, metric, window_days, window_end]).fetchone()
    if row is None or row[0] is None or row[1] is None:
        return None
    realized, reference = row
    degradation = relative_degradation(model.task, metric, realized, reference)
    window = f"the realized {metric} of the {window_days}-day window ending {window_end.isoformat()}"
    if degradation > model.slos.performance.max_relative_drop:
        return "confirmed", (f"the labels confirm it: {window} is {realized:.4f}, {degradation:.1%} worse than "
                             f"the reference {reference:.4f}")
    return "withdrawn", (f"the labels withdraw it: {window} is {realized:.4f} against the reference "
                         f"{reference:.4f}, within tolerance")
