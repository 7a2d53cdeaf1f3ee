"""Governance actions: what was decided about a model, by whom, and the events that carry it.

governance.actions records every action: a rollback a person ordered (`mlwatch
rollback`), a retrain requested by an alert whose playbook says so, and the decisions of
the promotion gate for candidate versions. Rollbacks and retrain requests become Airflow
asset events, `mlwatch/rollback/<model>` and `mlwatch/retrain/<model>`, emitted by the
mlwatch_governance DAG (and at the end of every nightly run), so that a team's own
deployment or training DAG can be scheduled on them. Gate decisions are recorded with
their evidence for people and deployment systems to act on; they emit nothing.

The promotion gate compares a candidate version (a version first seen in the last
RELEASE_DAYS, serving shadow or canary traffic, or all of it since) with the champion
(the version that served most in the window before it) on the same window and the same
segments: the candidate is rolled back if it is worse than the champion beyond the
tolerance with non-overlapping intervals anywhere, promoted if it is measured on enough
labeled rows and worse nowhere, and held otherwise. A decision is recorded when it
changes.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import duckdb

from mlwatch.config import Config
from mlwatch.errors import UsageError
from mlwatch.metric_catalog import metric as metric_info
from mlwatch.metric_catalog import relative_degradation
from mlwatch.warehouse import quote, table_exists

ACTIONS_DDL = """
CREATE TABLE IF NOT EXISTS governance.actions (
    action_id VARCHAR PRIMARY KEY,
    model_name VARCHAR NOT NULL,
    action VARCHAR NOT NULL,          -- rollback | retrain_request | promote | hold
    from_version VARCHAR,
    to_version VARCHAR,
    reason VARCHAR,
    actor VARCHAR NOT NULL,
    "at" TIMESTAMP NOT NULL,
    alert_id VARCHAR,
    evidence VARCHAR,
    asset VARCHAR,                    -- the asset event this action emits, if any
    emitted_at TIMESTAMP
)
"""
RELEASE_DAYS = 14
GATE = "mlwatch-promotion-gate"


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS governance")
    con.execute(ACTIONS_DDL)


def _action_id(*parts: Any) -> str:
    return "act-" + hashlib.sha1("|".join(str(p) for p in parts).encode()).hexdigest()[:10]


def asset_name(action: str, model: str) -> str | None:
    kind = {"rollback": "rollback", "retrain_request": "retrain"}.get(action)
    return f"mlwatch/{kind}/{model}" if kind else None


def _versions(con: duckdb.DuckDBPyConnection, model: str) -> list[tuple[str, dt.datetime, dt.datetime]]:
    """(version, first, last prediction), oldest first."""
    if not table_exists(con, "raw", "predictions"):
        return []
    return con.execute("SELECT model_version, min(predicted_at), max(predicted_at) FROM raw.predictions "
                       "WHERE model_name = ? GROUP BY 1 ORDER BY 2, 1", [model]).fetchall()


def record_rollback(con: duckdb.DuckDBPyConnection, config: Config, model: str, to_version: str, reason: str,
                    actor: str | None = None) -> dict:
    ensure_tables(con)
    if model not in config.models:
        raise UsageError(f"model {model!r} is not in the configuration ({', '.join(sorted(config.models))})")
    versions = _versions(con, model)
    known = [v for v, _, _ in versions]
    if to_version not in known:
        raise UsageError(f"{model} never served version {to_version!r}; versions seen: {', '.join(known) or 'none'}")
    # The newest version still serving on the last day is the one to roll back (canaries included).
    last_day = max(v[2] for v in versions).date()
    serving = max((v for v in versions if v[2].date() == last_day), key=lambda v: v[1])[0]
    if serving == to_version:
        raise UsageError(f"{model} {to_version} is already the version serving the latest predictions")
    at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    actor = actor or os.environ.get("MLWATCH_ACTOR") or getpass.getuser()
    action = {"action_id": _action_id(model, "rollback", to_version, reason, at.isoformat()), "model_name": model,
              "action": "rollback", "from_version": serving, "to_version": to_version, "reason": reason,
              "actor": actor, "at": at, "alert_id": reason if reason.startswith("mlw-") else None,
              "evidence": None, "asset": asset_name("rollback", model), "emitted_at": None}
    _insert(con, action)
    return action


def request_retrain(con: duckdb.DuckDBPyConnection, alert: dict) -> bool:
    """Record a retrain request for an alert whose playbook's action is retrain; once per alert."""
    ensure_tables(con)
    action_id = _action_id(alert["alert_id"], "retrain_request")
    if con.execute("SELECT 1 FROM governance.actions WHERE action_id = ?", [action_id]).fetchone():
        return False
    _insert(con, {"action_id": action_id, "model_name": alert["model_name"], "action": "retrain_request",
                  "from_version": None, "to_version": None, "reason": alert["title"], "actor": "mlwatch",
                  "at": dt.datetime.combine(alert["first_seen"], dt.time()), "alert_id": alert["alert_id"],
                  "evidence": alert.get("evidence"), "asset": asset_name("retrain_request", alert["model_name"]),
                  "emitted_at": None})
    return True


def _insert(con: duckdb.DuckDBPyConnection, action: dict) -> None:
    columns = list(action)
    con.execute(f"INSERT INTO governance.actions ({', '.join(quote(c) for c in columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})", [action[c] for c in columns])


def pending_events(con: duckdb.DuckDBPyConnection) -> list[dict]:
    ensure_tables(con)
    cursor = con.execute('SELECT * FROM governance.actions WHERE asset IS NOT NULL AND emitted_at IS NULL ORDER BY "at"')
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def mark_emitted(con: duckdb.DuckDBPyConnection, action_ids: list[str]) -> None:
    for action_id in action_ids:
        con.execute("UPDATE governance.actions SET emitted_at = now()::TIMESTAMP WHERE action_id = ?", [action_id])


# ------------------------------------------------------------------ promotion gate


@dataclass
class GateDecision:
    model: str
    candidate: str
    champion: str
    decision: str                     # promote | hold | rollback
    evidence: dict


def _rows(con, sql: str, params: list) -> list[dict]:
    cursor = con.execute(sql, params)
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def gate_decisions(con: duckdb.DuckDBPyConnection, config: Config, run_date: dt.date) -> list[GateDecision]:
    decisions = []
    for name, model in sorted(config.models.items()):
        versions = _versions(con, name)
        start = run_date - dt.timedelta(days=model.alert_window_days - 1)
        recent = [(v, first) for v, first, _ in versions
                  if run_date - dt.timedelta(days=RELEASE_DAYS) <= first.date() <= run_date]
        if not recent:
            continue
        candidate, since = max(recent, key=lambda r: r[1])
        # The champion is what served before the candidate appeared and still serves beside it.
        older = [(v, first) for v, first, last in versions if first < since and last.date() >= start]
        if not older:
            continue
        champion = max(older, key=lambda r: r[1])[0]
        rows = _rows(con, "SELECT model_version, segment, segment_value, value, ci_low, ci_high, n_labeled "
                          "FROM marts.performance WHERE model_name = ? AND metric = ? AND window_days = ? "
                          "AND window_end = ? AND model_version IN (?, ?)",
                     [name, model.performance_metric, model.alert_window_days, run_date, candidate, champion])
        by_key: dict[tuple, dict[str, dict]] = {}
        for row in rows:
            by_key.setdefault((row["segment"], row["segment_value"]), {})[row["model_version"]] = row
        higher = metric_info(model.task, model.performance_metric).higher_is_better
        tolerance = model.slos.performance.max_relative_drop
        enough = model.slos.performance.min_labeled
        worse, compared = [], []
        for (segment, value), pair in sorted(by_key.items()):
            cand, champ = pair.get(candidate), pair.get(champion)
            if not cand or not champ or cand["value"] is None or champ["value"] is None \
                    or min(cand["n_labeled"], champ["n_labeled"]) < enough:
                continue
            drop = relative_degradation(model.task, model.performance_metric, cand["value"], champ["value"])
            separate = cand["ci_high"] < champ["ci_low"] if higher else cand["ci_low"] > champ["ci_high"]
            entry = {"segment": segment, "segment_value": value, "candidate": round(cand["value"], 6),
                     "champion": round(champ["value"], 6), "relative_drop": round(drop, 6)}
            compared.append(entry)
            if drop > tolerance and separate:
                worse.append(entry)
        overall = any(e["segment"] == "__all__" for e in compared)
        decision = "rollback" if worse else ("promote" if overall else "hold")
        decisions.append(GateDecision(name, candidate, champion, decision, {
            "metric": model.performance_metric, "window_days": model.alert_window_days, "window_end": str(run_date),
            "worse": worse, "compared": len(compared),
        }))
    return decisions


def record_gate_decisions(con: duckdb.DuckDBPyConnection, config: Config, run_date: dt.date) -> list[dict]:
    """Record each candidate's gate decision when it differs from the last one recorded."""
    ensure_tables(con)
    recorded = []
    for d in gate_decisions(con, config, run_date):
        last = con.execute("SELECT action FROM governance.actions WHERE model_name = ? AND to_version = ? "
                           'AND actor = ? AND "at" <= ? ORDER BY "at" DESC LIMIT 1',
                           [d.model, d.candidate, GATE, dt.datetime.combine(run_date, dt.time())]).fetchone()
        if last and last[0] == d.decision:
            continue
        worse = d.evidence["worse"]
        reason = (f"{d.candidate} worse than {d.champion} in " +
                  ", ".join(f"{w['segment']}={w['segment_value']}" if w["segment"] != "__all__" else "overall"
                            for w in worse)) if worse else \
            (f"{d.candidate} not worse than {d.champion} on {d.evidence['compared']} comparisons"
             if d.decision == "promote" else f"not enough labeled rows yet to compare {d.candidate} with {d.champion}")
        action = {"action_id": _action_id(d.model, d.candidate, d.decision, run_date), "model_name": d.model,
                  "action": d.decision, "from_version": d.champion, "to_version": d.candidate, "reason": reason,
                  "actor": GATE, "at": dt.datetime.combine(run_date, dt.time()), "alert_id": None,
                  "evidence": json.dumps(d.evidence, sort_keys=True), "asset": None, "emitted_at": None}
        if not con.execute("SELECT 1 FROM governance.actions WHERE action_id = ?", [action["action_id"]]).fetchone():
            _insert(con, action)
            recorded.append(action)
    return recorded
