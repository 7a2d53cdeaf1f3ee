"""The outbox: every message is written to ops.outbox before anyone is told.

enqueue() decides, for one night, what to say:
  - a message for each new alert, up to the channel's daily budget (slack.alerts_per_day),
    most severe first; the rest go to the digest;
  - an edit of the original message for an alert that still holds (not a new post);
  - an edit and a thread reply when an alert resolves, or when the labels settle an
    estimate (confirmed or withdrawn); a realized alert that confirms an estimate is
    posted in the estimate's thread, shown in the channel too;
  - one digest per channel: drift without impact, and the alerts over budget.
deliver() then sends what is pending, oldest first. A message is queued once (its
message_id is its key), sent once even across a crash (mlwatch.alerts.posting), and its
Slack timestamp recorded; a run that cannot reach Slack leaves it pending for the next run. With no Slack configured, messages are
kept locally: marked 'local' and appended to <reports>/outbox.jsonl, and the console
says so.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from mlwatch.alerts import messages, posting, slack
from mlwatch.config import Config

log = logging.getLogger(__name__)

OUTBOX_DDL = """
CREATE TABLE IF NOT EXISTS ops.outbox (
    message_id VARCHAR PRIMARY KEY,
    run_date DATE NOT NULL,
    channel VARCHAR NOT NULL,
    alert_id VARCHAR,
    kind VARCHAR NOT NULL,
    message VARCHAR NOT NULL,      -- the platform-neutral message (JSON)
    payload VARCHAR NOT NULL,      -- what is posted to Slack (JSON)
    status VARCHAR NOT NULL,       -- pending | sent | local
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error VARCHAR,
    delivered_at TIMESTAMP,
    slack_ts VARCHAR,
    target VARCHAR,                -- for edits: the message_id of the message edited
    alert_ids VARCHAR[],           -- for a digest: the alerts it tells about
    attempted_at TIMESTAMP         -- a post began whose outcome is unknown (UTC): check Slack before posting again
)
"""
# chat.postMessage allows about one message per second per channel.
SECONDS_BETWEEN_POSTS = 1.0
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
ACTION_ORDER = {"alert_opened": 0, "alert_escalated": 1, "digest": 2, "alert_update": 3, "alert_resolved": 4,
                "alert_settled": 4, "report": 5}
# Messages that edit their alert's message and reply in its thread.
THREADED = ("alert_escalated", "alert_resolved", "alert_settled")


@dataclass
class DeliveryResult:
    queued: int = 0
    sent: list[str] = field(default_factory=list)
    kept_local: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    target: str = "outbox"
    # Every message still pending once this delivery ended, this night's or older: (message_id, channel, error)
    undelivered: list[tuple[str, str, str | None]] = field(default_factory=list)


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(OUTBOX_DDL)
    for column, kind in (("target", "VARCHAR"), ("alert_ids", "VARCHAR[]"), ("attempted_at", "TIMESTAMP")):
        con.execute(f"ALTER TABLE ops.outbox ADD COLUMN IF NOT EXISTS {column} {kind}")
    posting.ensure_tables(con)


def _rows(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def _queue(con: duckdb.DuckDBPyConnection, message: messages.Message, *, target: str | None = None,
           alert_ids: list[str] | None = None) -> bool:
    exists = con.execute("SELECT 1 FROM ops.outbox WHERE message_id = ?", [message.message_id]).fetchone()
    if exists:
        return False
    con.execute(
        "INSERT INTO ops.outbox (message_id, run_date, channel, alert_id, kind, message, payload, status, target, "
        "alert_ids) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
        [message.message_id, message.run_date, message.channel, message.alert_id, message.kind, message.to_json(),
         json.dumps(messages.render_slack(message), sort_keys=True), target, alert_ids],
    )
    return True


def enqueue(con: duckdb.DuckDBPyConnection, config: Config, run_date: dt.date) -> int:
    """Queue what the night has to say; returns the number of messages queued."""
    ensure_tables(con)
    queued = 0
    # Open alerts nobody was told about: tonight's, and those a backfill's replayed nights
    # opened (or a night whose delivery never ran) that are still open.
    fresh = _rows(con.execute(
        "SELECT * FROM marts.alerts WHERE status = 'open' AND first_seen <= ? AND delivery IS NULL", [run_date]))
    fresh.sort(key=lambda a: (SEVERITY_ORDER.get(a["severity"], 9), a["kind"], a["alert_id"]))
    # Alerts whose first message is tonight's (this run's, or an earlier run's of the same night):
    # nothing to edit yet.
    told_tonight = {a["alert_id"] for a in fresh} | {row[0] for row in con.execute(
        "SELECT alert_id FROM ops.outbox WHERE kind = 'alert_opened' AND run_date = ?", [run_date]).fetchall()}
    overflow: dict[str, list[dict]] = {}
    for alert in fresh:
        channel = messages.channel(config, alert)
        used = con.execute(
            "SELECT count(*) FROM ops.outbox WHERE channel = ? AND run_date = ? AND kind = 'alert_opened'",
            [channel, run_date]).fetchone()[0]
        if used < config.slack.alerts_per_day:
            previous = messages.previous_version(con, alert["model_name"], alert.get("model_version"))
            queued += _queue(con, messages.alert_opened(alert, config, previous=previous, told_on=run_date),
                             target=_thread_of(con, alert))
            con.execute("UPDATE marts.alerts SET delivery = 'message' WHERE alert_id = ?", [alert["alert_id"]])
        else:
            con.execute("UPDATE marts.alerts SET delivery = 'digest' WHERE alert_id = ?", [alert["alert_id"]])

    for alert in _rows(con.execute(
            "SELECT * FROM marts.alerts WHERE status = 'open' AND delivery = 'message' AND first_seen < ? "
            "AND last_seen = ?", [run_date, run_date])):
        if alert["alert_id"] in told_tonight:
            continue
        if alert["escalated_on"] == run_date:    # edits the message too, and tells the owner in its thread
            escalated = messages.alert_escalated(alert, config)
            queued += _queue(con, escalated, target=f"{alert['alert_id']}:opened")
            continue
        update = messages.alert_update(alert, config)
        queued += _queue(con, update, target=f"{alert['alert_id']}:opened")
    for alert in _rows(con.execute(
            "SELECT * FROM marts.alerts WHERE status = 'open' AND delivery = 'message' AND last_seen < ? "
            "AND list_contains(unjudged_nights, ?)", [run_date, run_date])):
        if alert["alert_id"] in told_tonight:
            continue
        queued += _queue(con, messages.alert_unjudged(alert, config, run_date), target=f"{alert['alert_id']}:opened")
    for alert in _rows(con.execute(
            "SELECT * FROM marts.alerts WHERE status = 'resolved' AND resolved_on = ? AND delivery = 'message' "
            "AND settled_on IS DISTINCT FROM resolved_on", [run_date])):
        queued += _queue(con, messages.alert_resolved(alert, config), target=f"{alert['alert_id']}:opened")
    for alert in _rows(con.execute(
            "SELECT * FROM marts.alerts WHERE settled_on = ? AND delivery = 'message'", [run_date])):
        queued += _queue(con, messages.alert_settled(alert, config), target=f"{alert['alert_id']}:opened")

    # Over the budget: into the digest (also on a rerun, after the first run marked them).
    for alert in _rows(con.execute(
            "SELECT * FROM marts.alerts WHERE delivery = 'digest' AND (first_seen = ? OR list_contains(?, alert_id)) "
            "ORDER BY severity, alert_id", [run_date, sorted(told_tonight)])):
        overflow.setdefault(messages.channel(config, alert), []).append(alert)
    drift_items: dict[str, list[dict]] = {}
    unchanged: dict[str, list[dict]] = {}
    for alert in _rows(con.execute(
            "SELECT * FROM marts.alerts WHERE status = 'digest' AND last_seen = ? ORDER BY model_name, alert_id",
            [run_date])):
        channel = messages.channel(config, alert)
        (drift_items if _worth_listing(alert, run_date) else unchanged).setdefault(channel, []).append(alert)
    # A digest with nothing new or changed is not sent: the report lists every item.
    for channel in sorted(set(overflow) | set(drift_items)):
        items, extra = drift_items.get(channel, []), overflow.get(channel, [])
        message = messages.digest(channel, run_date, items, extra, config.slack.alerts_per_day,
                                  unchanged.get(channel, []))
        queued += _queue(con, message, alert_ids=[a["alert_id"] for a in [*extra, *items]])
        for alert in items:
            con.execute("UPDATE marts.alerts SET digest_listed_on = ?, digest_listed_value = ? WHERE alert_id = ?",
                        [run_date, alert["value"], alert["alert_id"]])
    return queued


def _thread_of(con: duckdb.DuckDBPyConnection, alert: dict) -> str | None:
    """The opening message whose thread a new alert is told in (the estimate it confirms), if that was sent."""
    if not alert.get("thread_alert_id"):
        return None
    parent = f"{alert['thread_alert_id']}:opened"
    return parent if con.execute("SELECT 1 FROM ops.outbox WHERE message_id = ?", [parent]).fetchone() else None


# A digest item is listed again when its value moved this much since it was last listed.
DIGEST_CHANGE = 0.25


def _worth_listing(alert: dict, run_date: dt.date) -> bool:
    """New, listed tonight already (a rerun), or changed materially since it was last listed."""
    listed_on, listed_value, value = alert.get("digest_listed_on"), alert.get("digest_listed_value"), alert["value"]
    if alert["first_seen"] == run_date or listed_on is None or listed_on == run_date:
        return True
    if listed_value is None or value is None:
        return listed_value != value
    return abs(value - listed_value) > DIGEST_CHANGE * max(abs(listed_value), 1e-12)


def enqueue_report(con: duckdb.DuckDBPyConnection, config: Config, run_date: dt.date, summary: dict,
                   link: str) -> int:
    """Queue the report's summary for the default channel (once per night: a rerun sends nothing)."""
    ensure_tables(con)
    return int(_queue(con, messages.report_summary(config.slack.default_channel, run_date, summary, link)))


def deliver(con: duckdb.DuckDBPyConnection, config: Config) -> DeliveryResult:
    """Send every pending message, oldest first; record what happened to each."""
    ensure_tables(con)
    result = _deliver(con, config)
    result.undelivered = undelivered(con)
    return result


def undelivered(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str | None]]:
    """Messages the outbox still holds: (message_id, channel, last error or why it waits)."""
    return [tuple(row) for row in con.execute(
        "SELECT message_id, channel, coalesce(last_error, 'waits for the message it edits') FROM ops.outbox "
        "WHERE status = 'pending' ORDER BY run_date, message_id").fetchall()]


def _deliver(con: duckdb.DuckDBPyConnection, config: Config) -> DeliveryResult:
    result = DeliveryResult()
    pending = _rows(con.execute("SELECT * FROM ops.outbox WHERE status = 'pending'"))
    pending.sort(key=lambda r: (r["run_date"], ACTION_ORDER.get(r["kind"], 9), r["message_id"]))
    result.queued = len(pending)
    if not pending:
        return result
    target = slack.resolve(config)
    if target is None:
        _keep_local(con, config, pending, result)
        return result
    result.target = f"Slack ({target.source})"
    web = slack.client(target)
    last_post: dict[str, float] = {}
    for row in pending:
        original = None
        if row["target"]:
            original = con.execute("SELECT status, slack_ts FROM ops.outbox WHERE message_id = ?",
                                   [row["target"]]).fetchone()
            if original is None or original[0] == "pending":
                result.waiting.append(row["message_id"])   # edits wait for the message they edit
                continue
            if original[0] == "local":
                _keep_local(con, config, [row], result)
                continue
        wait = SECONDS_BETWEEN_POSTS - (time.monotonic() - last_post.get(row["channel"], -1e9))
        if wait > 0:
            time.sleep(wait)
        try:
            ts = _send(con, web, row, original[1] if original else None)
        except Exception as exc:  # Slack down or refusing: keep it pending for the next run
            error = posting.describe(exc)
            con.execute("UPDATE ops.outbox SET last_error = ? WHERE message_id = ?", [error, row["message_id"]])
            result.failed.append((row["message_id"], error))
            log.error("Slack delivery of %s to %s failed: %s; it stays in the outbox", row["message_id"],
                      row["channel"], error)
            continue
        last_post[row["channel"]] = time.monotonic()
        _mark_delivered(con, row, "sent", ts)
        result.sent.append(row["message_id"])
    return result


def _send(con: duckdb.DuckDBPyConnection, web, row: dict, original_ts: str | None) -> str | None:
    payload = json.loads(row["payload"])
    if row["kind"] == "alert_opened" and original_ts:   # told in the thread of the estimate it confirms
        return posting.post_once(con, web, row, {**payload, "reply_broadcast": True}, thread_ts=original_ts)
    if row["kind"] in ("alert_update", *THREADED):
        if row["kind"] == "alert_update":
            con.execute("UPDATE ops.outbox SET attempts = attempts + 1 WHERE message_id = ?", [row["message_id"]])
        posting.update(con, web, row["channel"], original_ts, payload)
        if row["kind"] in THREADED:
            reply = messages.render_thread_reply(messages.Message(**_message_fields(row["message"])))
            posting.post_once(con, web, row, reply, thread_ts=_thread_root(con, row["target"]) or original_ts)
        return original_ts
    return posting.post_once(con, web, row, payload)


def _thread_root(con: duckdb.DuckDBPyConnection, opened_message_id: str | None) -> str | None:
    """The ts replies go under: an alert's own message, or, for one told in another's thread, that thread's."""
    if not opened_message_id:
        return None
    row = con.execute("SELECT o.slack_ts FROM ops.outbox AS m JOIN ops.outbox AS o ON o.message_id = m.target "
                      "WHERE m.message_id = ?", [opened_message_id]).fetchone()
    return row[0] if row else None


def _message_fields(text: str) -> dict:
    data = json.loads(text)
    data["run_date"] = dt.date.fromisoformat(data["run_date"])
    data["facts"] = [tuple(f) for f in data["facts"]]
    data["items"] = [tuple(i) for i in data["items"]]
    return data


def _keep_local(con: duckdb.DuckDBPyConnection, config: Config, pending: list[dict], result: DeliveryResult) -> None:
    path = Path(config.reports) / "outbox.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    # A run killed after writing the file but before marking the rows wrote them already.
    text = path.read_text() if path.exists() else ""
    written = _ids_written(text)
    cut_short = text and not text.endswith("\n")
    with open(path, "a") as out:
        if cut_short:
            out.write("\n")
        for row in pending:
            if row["message_id"] in written:
                continue
            line = {"message_id": row["message_id"], "channel": row["channel"], "kind": row["kind"],
                    "run_date": row["run_date"].isoformat(), **json.loads(row["payload"])}
            if row["kind"] == "alert_opened" and row["target"]:
                line["thread_of"] = row["target"]
            if row["kind"] in THREADED:
                line["thread_reply"] = messages.render_thread_reply(messages.Message(**_message_fields(row["message"])))
            out.write(json.dumps(line, sort_keys=True) + "\n")
    for row in pending:
        _mark_delivered(con, row, "local", None)
        result.kept_local.append(row["message_id"])
    log.warning("Slack is not configured (no %s, no Airflow connection %r): %d message(s) written to %s",
                slack.TOKEN_ENV, config.slack.connection_id, len(pending), path)


def _ids_written(text: str) -> set[str]:
    ids = set()
    for line in text.splitlines():
        try:
            ids.add(json.loads(line)["message_id"])
        except (ValueError, KeyError, TypeError):
            continue      # a line cut short by a crash: its message is written again whole
    return ids


def _mark_delivered(con: duckdb.DuckDBPyConnection, row: dict, status: str, ts: str | None) -> None:
    con.execute(
        "UPDATE ops.outbox SET status = ?, attempts = greatest(attempts, 1), last_error = NULL, "
        "attempted_at = NULL, delivered_at = now()::TIMESTAMP, slack_ts = ? WHERE message_id = ?",
        [status, ts, row["message_id"]],
    )
    alert_ids = [row["alert_id"]] if row["kind"] == "alert_opened" else \
        list(row.get("alert_ids") or []) if row["kind"] == "digest" else []
    for alert_id in alert_ids:
        con.execute(
            "UPDATE marts.alerts SET notified_at = (SELECT delivered_at FROM ops.outbox WHERE message_id = ?), "
            "slack_channel = ?, slack_ts = ? WHERE alert_id = ? AND notified_at IS NULL",
            [row["message_id"], row["channel"], ts, alert_id],
        )
