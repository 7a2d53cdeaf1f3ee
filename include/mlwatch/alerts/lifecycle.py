"""marts.alerts: one row per alert, kept across nights.

A condition that holds again the next night updates its alert (last_seen) instead of
opening a new one; an open alert whose condition no longer holds is resolved (a
performance alert only after slos.performance.resolve_after_days clear nights: see
_resolves), but only on a night with the evidence to judge it (alerts/evidence.py): a
night without keeps it open and records why. Kinds that a model routes to the 'digest'
playbook are recorded with status 'digest' and never page. A condition another alert
explains (rules.correlate) keeps its alert open if it has one, and opens none. A rerun
of the night gives the same table; a rerun of an older night, after later nights have
run, leaves the lifecycle alone.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field

import duckdb

from mlwatch.alerts import evidence, playbooks, settlement
from mlwatch.alerts.candidate import SEVERITIES, Candidate, alert_id
from mlwatch.alerts.rules import ESTIMATED_KINDS, PERFORMANCE_KINDS
from mlwatch.config import PLAYBOOK_DIGEST, Config

log = logging.getLogger(__name__)

ALERTS_DDL = """
CREATE TABLE IF NOT EXISTS marts.alerts (
    alert_id VARCHAR PRIMARY KEY,
    dedupe_key VARCHAR NOT NULL,
    model_name VARCHAR NOT NULL,
    model_version VARCHAR,
    kind VARCHAR NOT NULL,
    severity VARCHAR NOT NULL,
    playbook VARCHAR,
    title VARCHAR NOT NULL,
    metric VARCHAR,
    segment VARCHAR,
    segment_value VARCHAR,
    window_days INTEGER,
    value DOUBLE,
    reference_value DOUBLE,
    ci_low DOUBLE,
    ci_high DOUBLE,
    since DATE,
    first_seen DATE NOT NULL,
    last_seen DATE NOT NULL,
    resolved_on DATE,
    status VARCHAR NOT NULL,
    evidence VARCHAR,
    notified_at TIMESTAMP,
    slack_channel VARCHAR,
    slack_ts VARCHAR,
    delivery VARCHAR,
    escalated_on DATE,         -- the last night its severity rose
    escalated_from VARCHAR,    -- the severity before that night
    unjudged_nights DATE[],    -- nights without the evidence to judge it (kept open, not counted as clear)
    unjudged_reason VARCHAR,   -- why the last of them could not judge it
    digest_listed_on DATE,     -- digest items: the last night the digest listed it in full
    digest_listed_value DOUBLE, -- and its value then (listed again when it moves materially)
    settlement VARCHAR,        -- estimated alerts: 'confirmed' or 'withdrawn' by the labels (alerts/settlement.py)
    settled_on DATE,
    settlement_detail VARCHAR,
    thread_alert_id VARCHAR,   -- a realized alert told in the thread of the estimate it confirms
    origin VARCHAR             -- 'night': opened by a nightly run; 'backtest': by a backfill replaying its nights
)
"""


@dataclass
class LifecycleResult:
    run_date: dt.date
    opened: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    digest: list[str] = field(default_factory=list)     # items for the digest, new or still there: not on-call's
    resolved: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)  # still open, and more severe than the night before
    unjudged: list[str] = field(default_factory=list)   # kept open: tonight had no evidence either way
    suppressed: list[str] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)    # estimates the labels confirmed or withdrew tonight
    skipped: bool = False


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    con.execute(ALERTS_DDL)
    for column, kind in (("delivery", "VARCHAR"), ("escalated_on", "DATE"), ("escalated_from", "VARCHAR"),
                         ("unjudged_nights", "DATE[]"), ("unjudged_reason", "VARCHAR"),
                         ("digest_listed_on", "DATE"), ("digest_listed_value", "DOUBLE"),
                         ("settlement", "VARCHAR"), ("settled_on", "DATE"), ("settlement_detail", "VARCHAR"),
                         ("thread_alert_id", "VARCHAR"), ("origin", "VARCHAR")):
        con.execute(f"ALTER TABLE marts.alerts ADD COLUMN IF NOT EXISTS {column} {kind}")
    # Before backfills replayed their nights, every alert was a nightly run's.
    con.execute("UPDATE marts.alerts SET origin = 'night' WHERE origin IS NULL")
    con.execute("CREATE TABLE IF NOT EXISTS ops.alert_nights (run_date DATE PRIMARY KEY)")


def responsible_models(config: Config, model_name: str, evidence: dict) -> list[str]:
    """The configured models an alert is about (a pipeline alert names them in its evidence)."""
    if model_name in config.models:
        return [model_name]
    return [m for m in evidence.get("models", []) if m in config.models]


def playbook_for(config: Config, candidate: Candidate) -> str:
    """The model's playbook for the alert's kind, else mlwatch's default for it (alerts/playbooks.py)."""
    return playbooks.chosen(config, responsible_models(config, candidate.model_name, candidate.evidence),
                            candidate.kind)[0]


def apply(con: duckdb.DuckDBPyConnection, config: Config, run_date: dt.date,
          candidates: list[Candidate], *, backtest: bool = False) -> LifecycleResult:
    """Move the lifecycle on by one night. `backtest`: a night of a backfill (mlwatch.backtest);
    the alerts it opens have origin 'backtest', and nobody is told about them unless they
    are still open on the backfill's last night."""
    ensure_tables(con)
    result = LifecycleResult(run_date=run_date)
    latest = con.execute("SELECT max(run_date) FROM ops.alert_nights").fetchone()[0]
    if latest is not None and run_date < latest:
        log.warning("alerts of %s not re-evaluated: night %s already moved the alert lifecycle on", run_date, latest)
        result.skipped = True
        return result

    con.execute("BEGIN TRANSACTION")
    try:
        for candidate in candidates:
            _upsert(con, config, candidate, result, backtest)
        keys = {c.dedupe_key for c in candidates}  # suppressed ones too: the condition still holds
        cleared = [a for a in _active(con, run_date) if a["dedupe_key"] not in keys]
        for alert in cleared:
            why = evidence.missing(con, config, alert, run_date)
            if why:
                con.execute("UPDATE marts.alerts SET unjudged_nights = list_distinct(list_append("
                            "coalesce(unjudged_nights, []), ?)), unjudged_reason = ? WHERE alert_id = ?",
                            [run_date, why, alert["alert_id"]])
                result.unjudged.append(alert["alert_id"])
            elif _resolves(config, alert, run_date):
                result.resolved.append(alert["alert_id"])
        result.resolved.sort()
        con.execute("UPDATE marts.alerts SET status = 'resolved', resolved_on = ? WHERE list_contains(?, alert_id)",
                    [run_date, result.resolved])
        result.settled = settlement.settle(con, config, run_date)
        con.execute("INSERT OR IGNORE INTO ops.alert_nights VALUES (?)", [run_date])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return result


def _active(con: duckdb.DuckDBPyConnection, run_date: dt.date) -> list[dict]:
    cursor = con.execute("SELECT * FROM marts.alerts WHERE status IN ('open', 'digest') AND first_seen <= ?",
                         [run_date])
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def _resolves(config: Config, alert: dict, run_date: dt.date) -> bool:
    """Whether an alert whose condition did not hold tonight is resolved.

    A statistical performance test judged on a trailing window with labels still arriving
    can dip under its threshold for a night while the drop is real; resolving then and
    opening a new alert the next night is the flapping on-call learns to ignore. Those
    alerts resolve after slos.performance.resolve_after_days clear nights in a row; an
    SLO breach (coverage, cost, data loss, time to decision) resolves the first clear night.
    """
    model = config.models.get(alert["model_name"])
    if alert["kind"] not in PERFORMANCE_KINDS | ESTIMATED_KINDS or model is None:
        return True
    # Nights without evidence are not clear nights: they said nothing.
    unjudged = [d for d in alert.get("unjudged_nights") or [] if alert["last_seen"] < d < run_date]
    return (run_date - alert["last_seen"]).days - len(unjudged) >= model.slos.performance.resolve_after_days


def _upsert(con: duckdb.DuckDBPyConnection, config: Config, c: Candidate, result: LifecycleResult,
            backtest: bool) -> None:
    playbook = playbook_for(config, c)
    status = "digest" if playbook == PLAYBOOK_DIGEST else "open"
    values = [c.severity, c.title, c.model_version, c.metric, c.segment, c.segment_value, c.window_days,
              c.value, c.reference_value, c.ci_low, c.ci_high, c.since, json.dumps(c.evidence, sort_keys=True)]
    existing = con.execute(
        "SELECT alert_id, severity FROM marts.alerts WHERE dedupe_key = ? AND status IN ('open', 'digest')",
        [c.dedupe_key],
    ).fetchone()
    if c.suppressed_by and not existing:
        result.suppressed.append(c.dedupe_key)
        return
    if c.holds_open and not existing:
        return
    if existing and SEVERITIES.index(c.severity) > SEVERITIES.index(existing[1]):
        con.execute("UPDATE marts.alerts SET escalated_on = ?, escalated_from = ? WHERE alert_id = ?",
                    [c.run_date, existing[1], existing[0]])
        if status == "open":
            result.escalated.append(existing[0])
    if existing:
        con.execute(
            "UPDATE marts.alerts SET severity = ?, title = ?, model_version = ?, metric = ?, segment = ?, "
            "segment_value = ?, window_days = ?, value = ?, reference_value = ?, ci_low = ?, ci_high = ?, "
            "since = ?, evidence = ?, last_seen = greatest(last_seen, ?) WHERE alert_id = ?",
            [*values, c.run_date, existing[0]],
        )
        (result.digest if status == "digest" else result.updated).append(existing[0])
        return
    new_id = alert_id(c.dedupe_key, c.run_date)
    con.execute(
        "INSERT INTO marts.alerts (alert_id, dedupe_key, model_name, kind, playbook, status, first_seen, last_seen, "
        "severity, title, model_version, metric, segment, segment_value, window_days, value, reference_value, "
        "ci_low, ci_high, since, evidence, origin) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [new_id, c.dedupe_key, c.model_name, c.kind, playbook, status, c.run_date, c.run_date, *values,
         "backtest" if backtest else "night"],
    )
    (result.digest if status == "digest" else result.opened).append(new_id)
