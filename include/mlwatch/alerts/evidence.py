"""Whether a night had the evidence to judge an open alert.

An alert whose condition did not hold tonight is resolved only if tonight's marts could
have shown the condition: the same rows the rule reads, with data in them. A night
without predictions, labels or telemetry says nothing about a drop or a breach. The
alert stays open, and its message says it was not judged and why.
"""

from __future__ import annotations

import datetime as dt
import json

import duckdb

from mlwatch.alerts.rules import DRIFT_KINDS, ESTIMATED_KINDS, PERFORMANCE_KINDS
from mlwatch.config import Config
from mlwatch.warehouse import table_exists

# The SLO of marts.slo_status that each SLO kind judges: `met` is NULL where there was nothing to judge.
SLO_OF_KIND = {
    "coverage_drop": "min_feature_coverage",
    "cost_over_budget": "max_cost_per_prediction_usd",
    "time_to_decision_breach": "time_to_decision_p95_s",
    "data_loss": "max_data_loss",
}


def missing(con: duckdb.DuckDBPyConnection, config: Config, alert: dict, run_date: dt.date) -> str | None:
    """Why tonight cannot judge the alert, or None when it can."""
    kind = alert["kind"]
    models = models_of(config, alert)
    if kind in SLO_OF_KIND:
        return _slo_unjudged(con, models, SLO_OF_KIND[kind], run_date)
    if kind in PERFORMANCE_KINDS:
        return _performance_unjudged(con, config, alert, run_date)
    if kind in ESTIMATED_KINDS:
        return _estimate_unjudged(con, config, alert, run_date)
    if kind in DRIFT_KINDS:
        if not table_exists(con, "marts", "drift") or not con.execute(
                "SELECT count(*) FROM marts.drift WHERE model_name = ? AND window_end = ? AND n_current > 0",
                [alert["model_name"], run_date]).fetchone()[0]:
            return f"no predictions of {alert['model_name']} in any window ending {run_date}"
    return None


def models_of(config: Config, alert: dict) -> list[str]:
    """The configured models a stored alert is about (a pipeline alert names them in its evidence)."""
    if alert["model_name"] in config.models:
        return [alert["model_name"]]
    return [m for m in json.loads(alert.get("evidence") or "{}").get("models", []) if m in config.models]


def _slo_unjudged(con: duckdb.DuckDBPyConnection, models: list[str], slo: str, run_date: dt.date) -> str | None:
    if not models or not table_exists(con, "marts", "slo_status"):
        return f"no {slo} figures on {run_date}"
    judged = con.execute("SELECT count(*) FROM marts.slo_status WHERE list_contains(?, model_name) AND slo = ? "
                         "AND day = ? AND met IS NOT NULL", [models, slo, run_date]).fetchone()[0]
    return None if judged else f"nothing to judge {slo} on for {', '.join(models)} on {run_date} (no data that day)"


def _performance_unjudged(con: duckdb.DuckDBPyConnection, config: Config, alert: dict,
                          run_date: dt.date) -> str | None:
    model = config.models.get(alert["model_name"])
    if model is None or not table_exists(con, "marts", "performance"):
        return f"no performance figures on {run_date}"
    row = con.execute(
        "SELECT max(n_labeled) FROM marts.performance WHERE model_name = ? AND window_end = ? AND window_days = ? "
        "AND metric = ? AND model_version = ? AND segment = ? AND segment_value = ?",
        [alert["model_name"], run_date, alert.get("window_days") or model.alert_window_days,
         alert.get("metric") or model.performance_metric, alert.get("model_version") or "__all__",
         alert.get("segment") or "__all__", alert.get("segment_value") or "__all__"]).fetchone()
    labeled = row[0] if row else None
    needed = model.slos.performance.min_labeled
    if not labeled or labeled < needed:
        return (f"{labeled or 0:,} labeled predictions in the window ending {run_date}, "
                f"{needed:,} needed to judge it")
    return None


def _estimate_unjudged(con: duckdb.DuckDBPyConnection, config: Config, alert: dict,
                       run_date: dt.date) -> str | None:
    model = config.models.get(alert["model_name"])
    if model is None or not table_exists(con, "marts", "performance_estimated"):
        return f"no estimated performance on {run_date}"
    row = con.execute(
        "SELECT n_predictions, is_reliable, unreliable_reason FROM marts.performance_estimated WHERE model_name = ? "
        "AND window_end = ? AND window_days = ? AND metric = ? AND model_version = '__all__' AND segment = '__all__'",
        [alert["model_name"], run_date, model.alert_window_days, alert.get("metric") or model.performance_metric]
    ).fetchone()
    if row is None or row[0] < model.slos.performance.min_labeled:
        return (f"{row[0] if row else 0:,} predictions in the window ending {run_date}, "
                f"{model.slos.performance.min_labeled:,} needed to judge the estimate")
    if not row[1]:
        return f"the estimate of the window ending {run_date} is not reliable: {row[2]}"
    return None
