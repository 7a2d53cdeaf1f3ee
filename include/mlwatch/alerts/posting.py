"""Posting to Slack exactly once, across retries and crashes.

Slack has no idempotency key. So the outbox records the intent to post (`attempted_at`)
before a request leaves, and every post carries its message_id in Slack's message
metadata. When an attempt's outcome is unknown (the process died, the connection broke
after the request was sent, Slack answered 5xx), the next attempt first searches the
channel's history since that moment for the message_id. A message found there is
recorded, not posted again.

An attempt ends in one of three ways:
  - Slack answered ok: the message is recorded as sent, with its ts.
  - Slack certainly did not post it: 429 after the client's own waits, connection
    refused, or an `ok: false` answer. The intent is cleared and the message waits.
  - Unknown: 5xx, a timeout, a reset connection, or a crash. The intent stays and the
    message is reconciled before it is sent again.

Reconciling needs the bot scopes channels:history and groups:history (history) and
channels:read and groups:read (finding a channel's id by its name). Without them a
message whose fate is unknown is posted again, with a warning. A page that may show
twice is better than a page that is lost.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from typing import Any, Callable

import duckdb

from mlwatch.alerts.slack import refused

log = logging.getLogger(__name__)

EVENT_TYPE = "mlwatch_message"
# Attempts within one run for an outcome that is unknown, with these waits between them.
BACKOFF_SECONDS = (1.0, 3.0)
# How far before the recorded intent the history search starts: clocks differ.
CLOCK_MARGIN = dt.timedelta(minutes=10)
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
# Answers meaning the history cannot be searched with this token or channel.
_CANNOT_SEARCH = {"missing_scope", "not_in_channel", "channel_not_found", "not_allowed_token_type",
                  "method_not_supported_for_channel_type"}

CHANNELS_DDL = """
CREATE TABLE IF NOT EXISTS ops.slack_channels (
    channel VARCHAR PRIMARY KEY,   -- as configured: '#name' or an id
    channel_id VARCHAR NOT NULL
)
"""


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(CHANNELS_DDL)


def metadata(message_id: str) -> dict[str, Any]:
    return {"event_type": EVENT_TYPE, "event_payload": {"message_id": message_id}}


def outcome_unknown(exc: Exception) -> bool:
    """Whether the failed request may still have been posted."""
    from slack_sdk.errors import SlackApiError

    if isinstance(exc, SlackApiError):
        return (getattr(exc.response, "status_code", 200) or 200) >= 500
    return not refused(exc)


def _remember(con: duckdb.DuckDBPyConnection, channel: str, channel_id: str | None) -> None:
    if channel_id and channel != channel_id:
        con.execute("INSERT OR REPLACE INTO ops.slack_channels VALUES (?, ?)", [channel, channel_id])


def channel_id(con: duckdb.DuckDBPyConnection, web, channel: str) -> str:
    """The id Slack's history, replies and update methods need, for a configured channel."""
    if _CHANNEL_ID.match(channel):
        return channel
    known = con.execute("SELECT channel_id FROM ops.slack_channels WHERE channel = ?", [channel]).fetchone()
    if known:
        return known[0]
    wanted, cursor = channel.lstrip("#"), None
    while True:
        page = web.conversations_list(types="public_channel,private_channel", exclude_archived=True,
                                      limit=1000, cursor=cursor)
        for found in page.get("channels", []):
            if found.get("name") == wanted:
                _remember(con, channel, found["id"])
                return found["id"]
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            raise LookupError(f"Slack has no channel {channel} that the bot can see; invite the bot or fix the "
                              "channel in mlwatch.yml")


def find_posted(web, channel: str, message_id: str, since: dt.datetime, thread_ts: str | None = None) -> str | None:
    """The ts of the message carrying message_id posted in channel (or thread) since `since`."""
    oldest = f"{(since.replace(tzinfo=dt.timezone.utc) - CLOCK_MARGIN).timestamp():.6f}"
    cursor = None
    while True:
        if thread_ts:
            page = web.conversations_replies(channel=channel, ts=thread_ts, oldest=oldest, limit=200,
                                             include_all_metadata=True, cursor=cursor)
        else:
            page = web.conversations_history(channel=channel, oldest=oldest, limit=200,
                                             include_all_metadata=True, cursor=cursor)
        for message in page.get("messages", []):
            found = message.get("metadata") or {}
            if found.get("event_type") == EVENT_TYPE and \
                    (found.get("event_payload") or {}).get("message_id") == message_id:
                return message["ts"]
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return None


def _already_posted(con, web, row: dict, attempted_at: dt.datetime, thread_ts: str | None) -> str | None:
    from slack_sdk.errors import SlackApiError

    try:
        where = channel_id(con, web, row["channel"])
        return find_posted(web, where, row["message_id"], attempted_at, thread_ts)
    except (SlackApiError, LookupError) as exc:
        error = exc.response.get("error") if isinstance(exc, SlackApiError) else "channel_not_found"
        if error not in _CANNOT_SEARCH:
            raise
        log.warning("cannot check whether %s reached %s before (%s): posting it again, so it may show twice; "
                    "give the bot the scopes channels:history, groups:history, channels:read and groups:read",
                    row["message_id"], row["channel"], error)
        return None


def post_once(con: duckdb.DuckDBPyConnection, web, row: dict, payload: dict[str, Any], *,
              thread_ts: str | None = None) -> str:
    """Post row's message (or, with thread_ts, its thread reply) unless Slack already has it; its ts.

    Raises the last error when it cannot be delivered now; the row then stays pending.
    """
    return _retrying(lambda: _attempt(con, web, row, payload, thread_ts), row["message_id"])


def _retrying(call: Callable[[], Any], what: str) -> Any:
    """call(), tried again after the waits of BACKOFF_SECONDS while Slack's answer is unknown."""
    for attempt in range(len(BACKOFF_SECONDS) + 1):
        try:
            return call()
        except Exception as exc:
            if attempt == len(BACKOFF_SECONDS) or not outcome_unknown(exc):
                raise
            log.warning("Slack did not answer %s clearly (%s); trying again", what, describe(exc))
            time.sleep(BACKOFF_SECONDS[attempt])
    raise AssertionError("unreachable")


def _attempt(con: duckdb.DuckDBPyConnection, web, row: dict, payload: dict[str, Any], thread_ts: str | None) -> str:
    (attempted_at,) = con.execute("SELECT attempted_at FROM ops.outbox WHERE message_id = ?",
                                  [row["message_id"]]).fetchone()
    if attempted_at is not None:
        found = _already_posted(con, web, row, attempted_at, thread_ts)
        if found:
            log.info("%s was already in %s (ts %s): recorded, not posted again", row["message_id"], row["channel"], found)
            return found
    where = channel_id(con, web, row["channel"]) if thread_ts else row["channel"]
    con.execute("UPDATE ops.outbox SET attempted_at = ?, attempts = attempts + 1 WHERE message_id = ?",
                [dt.datetime.now(dt.timezone.utc).replace(tzinfo=None), row["message_id"]])
    try:
        response = web.chat_postMessage(channel=where, thread_ts=thread_ts, metadata=metadata(row["message_id"]),
                                        unfurl_links=False, unfurl_media=False, **payload)
    except Exception as exc:
        if not outcome_unknown(exc):
            con.execute("UPDATE ops.outbox SET attempted_at = NULL WHERE message_id = ?", [row["message_id"]])
        raise
    _remember(con, row["channel"], response.get("channel"))
    return response["ts"]


def describe(exc: Exception) -> str:
    """A failed Slack call in a few words, for the outbox and the console (never the token)."""
    response = getattr(exc, "response", None)
    if response is not None and getattr(response, "status_code", None):
        error = response.get("error") if hasattr(response, "get") else None
        return f"HTTP {response.status_code}" + (f" ({error})" if error else "")
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def update(con: duckdb.DuckDBPyConnection, web, channel: str, ts: str, payload: dict[str, Any]) -> None:
    """Edit a posted message. Doing it twice changes nothing, so an unknown outcome is simply retried."""
    where = channel_id(con, web, channel)
    _retrying(lambda: web.chat_update(channel=where, ts=ts, **payload), f"the edit of {ts} in {channel}")
