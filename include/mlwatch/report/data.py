"""What the daily report shows, read from the marts as small aggregates (never raw rows)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from mlwatch.alerts import evidence, messages, rules
from mlwatch.alerts.load import Load, alert_load
from mlwatch.config import PLAYBOOK_DIGEST, Config
from mlwatch.warehouse import table_exists


@dataclass
class ModelSection:
    name: str
    task: str
    owner: str
    metric: str
    window_days: int
    slos: pd.DataFrame
    performance: pd.DataFrame          # primary metric over time, overall, per version
    segments: pd.DataFrame             # primary metric per segment on the day, with intervals
    drift: pd.DataFrame                # feature x window end: strongest effect size / its threshold
    coverage: pd.DataFrame
    cost: pd.DataFrame
    time_to_decision: pd.DataFrame
    feature_value: pd.DataFrame
    inputs: pd.DataFrame = field(default_factory=pd.DataFrame)     # the day's rows per feed, what became of them
    # The primary metric estimated from the scores over time, whole model (binary models).
    estimated: pd.DataFrame = field(default_factory=pd.DataFrame)
    budget_usd: float | None = None
    ttd_slo_s: float | None = None
    # A missed SLO that no open alert covers: why the rule held it back (slo -> sentence).
    unpaged: dict[str, str] = field(default_factory=dict)


@dataclass
class ReportData:
    day: dt.date
    since: dt.date
    models: list[ModelSection] = field(default_factory=list)
    ledger: pd.DataFrame = field(default_factory=pd.DataFrame)          # the day, telemetry
    ledger_history: pd.DataFrame = field(default_factory=pd.DataFrame)  # peak utilization over time
    self_ledger: pd.DataFrame = field(default_factory=pd.DataFrame)     # mlwatch's own steps
    alerts: list[dict] = field(default_factory=list)
    digest: list[dict] = field(default_factory=list)
    # Alerts are decided on the nights mlwatch runs (a backfill: every night of its range);
    # on any other day, no open alert means nobody looked, not that all is well.
    alerts_evaluated: bool = True
    latest_alert_night: dt.date | None = None
    # Rows that arrived on the day for a model the configuration does not name (labels, predictions, costs)
    unconfigured: pd.DataFrame = field(default_factory=pd.DataFrame)
    # The alerts the history's nights opened, against the decision budget
    load: Load | None = None

    @property
    def constraint(self) -> dict | None:
        rows = self.ledger[self.ledger["is_constraint"] == True] if len(self.ledger) else self.ledger  # noqa: E712
        return rows.iloc[0].to_dict() if len(rows) else None

    @property
    def slos_missed(self) -> list[tuple[str, str]]:
        return [(m.name, row.slo) for m in self.models for row in m.slos.itertuples() if row.met is False]

    @property
    def slos_judged(self) -> int:
        return sum(int(m.slos["met"].notna().sum()) for m in self.models)


# The marts the nightly build gives a row per day it has data for (per model and day, or per
# stage and day); a day in none of them would make a page of zeros that reads as a calm night.
DAILY_MARTS = ("slo_status", "time_to_decision", "constraint_ledger")


def days_with_data(con: duckdb.DuckDBPyConnection) -> list[dt.date]:
    """The days the warehouse has figures for, oldest first."""
    selects = [f"SELECT DISTINCT day FROM marts.{table}" for table in DAILY_MARTS if table_exists(con, "marts", table)]
    if not selects:
        return []
    return [day for (day,) in con.execute(" UNION ".join(selects) + " ORDER BY day").fetchall()]


def _frame(con: duckdb.DuckDBPyConnection, schema: str, table: str, sql: str, params: list) -> pd.DataFrame:
    if not table_exists(con, schema, table):
        return pd.DataFrame()
    return con.execute(sql, params).df()


def load(con: duckdb.DuckDBPyConnection, config: Config, day: dt.date) -> ReportData:
    since = day - dt.timedelta(days=config.report.history_days - 1)
    data = ReportData(day=day, since=since)
    for name, model in sorted(config.models.items()):
        metric, window = model.performance_metric, model.alert_window_days
        data.models.append(ModelSection(
            name=name, task=model.task, owner=model.owner or "", metric=metric, window_days=window,
            slos=_frame(con, "marts", "slo_status",
                        "SELECT slo, detail, target, actual, met FROM marts.slo_status "
                        "WHERE model_name = ? AND day = ? ORDER BY slo", [name, day]),
            performance=_frame(con, "marts", "performance",
                               "SELECT window_end, model_version, value, ci_low, ci_high, reference_value, n_labeled, "
                               "label_coverage FROM marts.performance WHERE model_name = ? AND metric = ? "
                               "AND window_days = ? AND segment = '__all__' AND window_end BETWEEN ? AND ? "
                               "ORDER BY window_end, model_version", [name, metric, window, since, day]),
            estimated=_frame(con, "marts", "performance_estimated",
                             "SELECT window_end, estimated_value, ci_low, ci_high, label_coverage, is_reliable, "
                             "unreliable_reason FROM marts.performance_estimated WHERE model_name = ? AND metric = ? "
                             "AND window_days = ? AND model_version = '__all__' AND segment = '__all__' "
                             "AND window_end BETWEEN ? AND ? ORDER BY window_end", [name, metric, window, since, day]),
            segments=_frame(con, "marts", "performance",
                            "SELECT model_version, segment, segment_value, value, ci_low, ci_high, reference_value, "
                            "n_labeled FROM marts.performance WHERE model_name = ? AND metric = ? AND window_days = ? "
                            "AND window_end = ? AND segment <> '__all__' AND value IS NOT NULL "
                            "ORDER BY segment, segment_value, model_version", [name, metric, window, day]),
            drift=_frame(con, "marts", "drift",
                         "SELECT feature, window_end, max(effect_size / nullif(threshold, 0)) AS strength, "
                         "bool_or(is_drifted) AS drifted, bool_or(is_drifted AND has_impact) AS with_impact "
                         "FROM marts.drift WHERE model_name = ? AND window_days = ? AND window_end BETWEEN ? AND ? "
                         "GROUP BY feature, window_end ORDER BY feature, window_end", [name, window, since, day]),
            coverage=_frame(con, "marts", "feature_coverage",
                            "SELECT day, feature, is_critical, coverage FROM marts.feature_coverage "
                            "WHERE model_name = ? AND day BETWEEN ? AND ? ORDER BY feature, day", [name, since, day]),
            cost=_frame(con, "marts", "cost",
                        "SELECT day, cost_per_prediction_usd, cost_usd, n_predictions FROM marts.cost "
                        "WHERE model_name = ? AND day BETWEEN ? AND ? ORDER BY day", [name, since, day]),
            time_to_decision=_frame(con, "marts", "time_to_decision",
                                    "SELECT day, p50_s, p95_s, p99_s FROM marts.time_to_decision "
                                    "WHERE model_name = ? AND day BETWEEN ? AND ? ORDER BY day", [name, since, day]),
            feature_value=_frame(con, "marts", "feature_value",
                                 "SELECT feature, importance, cost_per_prediction, value_per_cost, value_rank, prune "
                                 "FROM marts.feature_value WHERE model_name = ? AND window_end = ? "
                                 "ORDER BY value_rank NULLS LAST, importance DESC, feature", [name, day]),
            inputs=_frame(con, "marts", "data_quality",
                          "SELECT feed, n_rows, n_accepted, n_quarantined, reasons, n_warnings, warnings, n_orphaned, "
                          "orphans, failure FROM marts.data_quality WHERE model_name = ? AND day = ? ORDER BY feed",
                          [name, day]),
            budget_usd=model.slos.max_cost_per_prediction_usd,
            ttd_slo_s=model.slos.time_to_decision_p95_s,
        ))
    data.unconfigured = _frame(con, "marts", "data_quality",
                               "SELECT model_name, feed, n_rows FROM marts.data_quality WHERE day = ? "
                               "AND NOT list_contains(?, model_name) AND model_name NOT IN ('__pipeline__', '__unknown__') "
                               "ORDER BY model_name, feed", [day, list(config.models)])
    ledger_sql = ("SELECT * FROM marts.constraint_ledger WHERE day = ? AND source = ? "
                  "ORDER BY stage_order NULLS LAST, stage")
    data.ledger = _frame(con, "marts", "constraint_ledger", ledger_sql, [day, "telemetry"])
    data.self_ledger = _frame(con, "marts", "constraint_ledger", ledger_sql, [day, "mlwatch"])
    data.ledger_history = _frame(con, "marts", "constraint_ledger",
                                 "SELECT day, stage, stage_order, peak_utilization, is_constraint "
                                 "FROM marts.constraint_ledger WHERE source = 'telemetry' AND day BETWEEN ? AND ? "
                                 "ORDER BY stage_order, day", [since, day])
    data.alerts_evaluated, data.latest_alert_night = _alert_nights(con, day)
    if data.alerts_evaluated:
        for alert in _alerts_open_on(con, day):
            # The same words as the Slack message: playbook, steps, the command with its values filled in.
            previous = messages.previous_version(con, alert["model_name"], alert.get("model_version"))
            said = messages.alert_opened(alert, config, previous=previous)
            alert.update(playbook_title=said.playbook_title, playbook_steps=said.steps, command=said.command,
                         look=said.look, facts=said.facts, owner=said.owner)
            (data.digest if alert["status"] == "digest" else data.alerts).append(alert)
        for model in data.models:
            model.unpaged = _unpaged(con, config, model, data.alerts, day)
    data.load = alert_load(con, config, since, day)
    return data


# The alert kinds that page each SLO of marts.slo_status when it is missed: the SLO rules'
# own (evidence.SLO_OF_KIND), the whole model's performance drops, and labels that stopped.
PAGED_BY = {slo: {kind} for kind, slo in evidence.SLO_OF_KIND.items()} | {
    "performance": set(rules.REALIZED_DROP_KINDS),
    "min_label_coverage": {"labels_stopped"}}


def _unpaged(con: duckdb.DuckDBPyConnection, config: Config, model: ModelSection, alerts: list[dict],
             day: dt.date) -> dict[str, str]:
    """Each missed SLO of the day with no open alert for it, and why: the scorecard and the
    alert list must not disagree without a reason."""
    reasons = {}
    for slo in model.slos.loc[model.slos["met"] == False, "slo"].unique() if not model.slos.empty else []:  # noqa: E712
        covering = [a for a in alerts if a["kind"] in PAGED_BY.get(slo, set())
                    and model.name in evidence.models_of(config, a)]
        if covering:
            continue
        reason = rules.why_performance_not_paged(con, config, model.name, day) if slo == "performance" else None
        reasons[slo] = reason or "no open alert for it on this night (see `mlwatch alerts` for the ones resolved or merged)"
    return reasons


def _alert_nights(con: duckdb.DuckDBPyConnection, day: dt.date) -> tuple[bool, dt.date | None]:
    """Whether the alert rules ran for the day (ops.alert_nights), and the latest night they ran."""
    if not table_exists(con, "ops", "alert_nights"):
        return False, None
    evaluated, latest = con.execute("SELECT coalesce(bool_or(run_date = ?), false), max(run_date) "
                                    "FROM ops.alert_nights", [day]).fetchone()
    return bool(evaluated), latest


def _alerts_open_on(con: duckdb.DuckDBPyConnection, day: dt.date) -> list[dict]:
    """The alerts open (or in the digest) on the night of `day`, most severe first.

    An alert keeps one row across nights, so on a past night it may since have moved on
    (last_seen) or been resolved: it was open that night if it began by then and was not
    resolved by then. One resolved since was open or in the digest as its playbook says.
    """
    if not table_exists(con, "marts", "alerts"):
        return []
    cursor = con.execute(
        "SELECT * FROM marts.alerts WHERE first_seen <= ? AND (status IN ('open', 'digest') OR resolved_on > ?) "
        "ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, first_seen, alert_id",
        [day, day])
    columns = [d[0] for d in cursor.description]
    alerts = [dict(zip(columns, row)) for row in cursor.fetchall()]
    for alert in alerts:
        if alert["status"] == "resolved":
            alert["status"] = "digest" if alert["playbook"] == PLAYBOOK_DIGEST else "open"
    return alerts
