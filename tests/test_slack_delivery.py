"""Delivery through the real slack-sdk client to a local server speaking the Slack Web API."""

import dataclasses
import datetime as dt
import json
import logging
import time

import duckdb
import pytest

from mlwatch.alerts import delivery, lifecycle
from mlwatch.alerts.candidate import Candidate
from mlwatch.ingest import ensure_tables
from mlwatch.warehouse import connect_writer
from tests.helpers import toy_config
from tests.slack_server import FakeSlack

NIGHT = dt.date(2026, 3, 12)


def candidate(key="performance_drop|toy|roc_auc|3d"):
    return Candidate(kind="performance_drop", model_name="toy", dedupe_key=key, severity="critical",
                     title="toy: roc_auc 0.5000 is 40.0% worse than its reference 0.8300 (tolerance 5.0%)",
                     run_date=NIGHT, since=dt.date(2026, 3, 11), model_version="__all__", segment="__all__",
                     segment_value="__all__", metric="roc_auc", window_days=3, value=0.5, reference_value=0.83,
                     ci_low=0.46, ci_high=0.54,
                     evidence={"relative_degradation": 0.4, "tolerance": 0.05, "n_labeled": 800, "label_coverage": 0.66})


@pytest.fixture
def config(tmp_path):
    config = toy_config(tmp_path)
    with connect_writer(config.warehouse) as con:
        ensure_tables(con, config)
        lifecycle.apply(con, config, NIGHT, [candidate(), candidate("performance_drop|toy|roc_auc|1d")])
    return config


def notify(config, night=NIGHT):
    with connect_writer(config.warehouse) as con:
        delivery.enqueue(con, config, night)
        return delivery.deliver(con, config)


def outbox(config):
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        return con.execute("SELECT message_id, status, attempts, slack_ts, last_error FROM ops.outbox "
                           "ORDER BY message_id").fetchall()


def test_each_new_alert_is_posted_once_with_its_blocks(config, fake_slack, caplog):
    caplog.set_level(logging.DEBUG)
    result = notify(config)
    assert len(result.sent) == 2 and result.failed == []
    posts = fake_slack.posts()
    assert [p["channel"] for p in posts] == ["#toy-alerts", "#toy-alerts"]
    blocks = posts[0]["blocks"] if isinstance(posts[0]["blocks"], list) else json.loads(posts[0]["blocks"])
    assert blocks[0]["type"] == "header" and "roc_auc" in blocks[0]["text"]["text"]
    assert any("95% CI [0.4600, 0.5400]" in f["text"] for b in blocks if b["type"] == "section" for f in b.get("fields", []))
    metadata = posts[0]["metadata"] if isinstance(posts[0]["metadata"], dict) else json.loads(posts[0]["metadata"])
    assert metadata["event_payload"]["message_id"].endswith(":opened")
    # Slack allows about one message per second per channel.
    stamps = [r.at for r in fake_slack.requests if r.method == "chat.postMessage"]
    assert stamps[1] - stamps[0] >= 0.95
    assert [row[1] for row in outbox(config)] == ["sent", "sent"]
    assert notify(config).queued == 0 and len(fake_slack.posts()) == 2   # nothing twice
    assert fake_slack.token not in caplog.text


def test_rate_limit_is_retried_after_the_delay_slack_asks_for(config, fake_slack):
    fake_slack.failures = [("429", 2)]
    started = time.monotonic()
    result = notify(config)
    assert len(result.sent) == 2
    assert time.monotonic() - started >= 2
    assert len(fake_slack.posts()) == 3      # the refused request, then both messages


def test_server_errors_are_retried(config, fake_slack):
    fake_slack.failures = [("500", None), ("500", None)]
    result = notify(config)
    assert len(result.sent) == 2 and result.failed == []


def test_a_slack_outage_loses_nothing_and_sends_nothing_twice(config, monkeypatch):
    down = FakeSlack().start()
    monkeypatch.setenv("MLWATCH_SLACK_TOKEN", down.token)
    monkeypatch.setenv("MLWATCH_SLACK_BASE_URL", down.base_url)
    down.stop()                              # Slack is unreachable
    result = notify(config)
    assert result.sent == [] and len(result.failed) == 2
    assert [(r[1], r[2]) for r in outbox(config)] == [("pending", 1), ("pending", 1)]
    assert all(r[4] for r in outbox(config))

    back = FakeSlack().start()               # Slack is back
    monkeypatch.setenv("MLWATCH_SLACK_BASE_URL", back.base_url)
    try:
        result = notify(config)
        assert len(result.sent) == 2
        assert notify(config).sent == []
        assert len(back.posts()) == 2
        assert [r[1] for r in outbox(config)] == ["sent", "sent"]
    finally:
        back.stop()


def test_the_airflow_connection_names_token_and_endpoint(config, monkeypatch):
    server = FakeSlack(token="xoxb-from-airflow-connection").start()
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_API_DEFAULT", json.dumps(
        {"conn_type": "slack", "password": server.token, "extra": {"base_url": server.base_url}}))
    try:
        result = notify(config)
        assert len(result.sent) == 2 and "Airflow connection slack_api_default" in result.target
        assert all(r.headers["Authorization"] == f"Bearer {server.token}" for r in server.requests)
    finally:
        server.stop()


def test_without_slack_messages_go_to_the_local_outbox_once(config):
    result = notify(config)
    assert len(result.kept_local) == 2 and result.sent == []
    lines = (config.reports / "outbox.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["channel"] == "#toy-alerts"
    notify(config)
    assert len((config.reports / "outbox.jsonl").read_text().splitlines()) == 2
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM marts.alerts WHERE notified_at IS NOT NULL "
                           "AND slack_channel = '#toy-alerts'").fetchone()[0] == 2


# --- exactly once across crashes -------------------------------------------------------------

def crash_notify(config, night, point, slack):
    """Run the notify step in another process that kills itself with SIGKILL at `point`."""
    import os
    import signal
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "tests.crash_notify", config.source, night.isoformat(), point],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "MLWATCH_SLACK_TOKEN": slack.token,
                                 "MLWATCH_SLACK_BASE_URL": slack.base_url})
    assert result.returncode == (0 if point == "none" else -signal.SIGKILL), result.stderr
    return result


def by_message_id(slack, channel="#toy-alerts", replies=False):
    ids = [m["metadata"]["event_payload"]["message_id"] for m in slack.in_channel(channel, replies=replies)]
    return {i: ids.count(i) for i in ids}


@pytest.mark.parametrize("point", ["before_post", "after_answer"])
def test_a_crash_during_notify_posts_each_alert_once(config, fake_slack, point):
    crash_notify(config, NIGHT, point, fake_slack)
    assert len(fake_slack.in_channel("#toy-alerts")) == (1 if point == "after_answer" else 0)
    result = notify(config)                    # the next run: reconciles, then sends the rest
    assert result.failed == [] and len(result.sent) == 2
    assert by_message_id(fake_slack) == {m: 1 for m, _, _, _, _ in outbox(config)}
    assert [(r[1], r[3] is not None) for r in outbox(config)] == [("sent", True), ("sent", True)]
    # the ts recorded is the one Slack has, so later edits reach the one message
    assert {r[3] for r in outbox(config)} == {m["ts"] for m in fake_slack.in_channel("#toy-alerts")}
    assert notify(config).queued == 0 and len(fake_slack.in_channel("#toy-alerts")) == 2


@pytest.mark.parametrize("point", ["before_reply", "after_reply"])
def test_a_crash_while_resolving_replies_in_the_thread_once(tmp_path, fake_slack, point):
    cost = Candidate(kind="cost_over_budget", model_name="toy", dedupe_key="cost_over_budget|toy", severity="warning",
                     title="toy: cost per prediction over budget", run_date=NIGHT, since=NIGHT)
    config = toy_config(tmp_path, edit=lambda d: d["models"]["toy"]["playbooks"].update(cost_over_budget="retrain"))
    with connect_writer(config.warehouse) as con:
        ensure_tables(con, config)
        lifecycle.apply(con, config, NIGHT, [cost])
    assert len(notify(config).sent) == 1
    next_night = NIGHT + dt.timedelta(days=1)
    with connect_writer(config.warehouse) as con:
        con.execute("CREATE TABLE marts.slo_status AS SELECT 'toy' AS model_name, ?::DATE AS day, "
                    "'max_cost_per_prediction_usd' AS slo, true AS met", [next_night])
        assert lifecycle.apply(con, config, next_night, []).resolved     # the cost came back under budget
    crash_notify(config, next_night, point, fake_slack)
    with connect_writer(config.warehouse) as con:
        result = delivery.deliver(con, config)
    assert result.failed == [] and len(result.sent) == 1
    [opened] = fake_slack.in_channel("#toy-alerts")
    assert "Resolved: " in json.dumps(opened["blocks"])                  # the original message, edited
    replies = fake_slack.in_channel("#toy-alerts", replies=True)
    assert len(replies) == 1 and replies[0]["thread_ts"] == opened["ts"]
    assert replies[0]["metadata"]["event_payload"]["message_id"].endswith(":resolved")


def test_slack_erring_after_it_posted_does_not_post_twice(config, fake_slack):
    fake_slack.failures = [("500 after posting", None)]
    result = notify(config)
    assert result.failed == [] and len(result.sent) == 2
    assert len(fake_slack.posts()) == 2                # checked the channel, found it, did not post again
    assert sorted(by_message_id(fake_slack).values()) == [1, 1]


def test_without_history_scope_a_message_of_unknown_fate_is_posted_again_and_said_so(config, fake_slack, caplog):
    fake_slack.missing_scopes = {"conversations.history"}
    fake_slack.failures = [("500 after posting", None)]
    result = notify(config)
    assert len(result.sent) == 2
    assert sorted(by_message_id(fake_slack).values()) == [1, 2]       # a page twice beats a page lost
    assert "may show twice" in caplog.text and "channels:history" in caplog.text


def test_edits_use_the_channel_id_slack_answered_with(config, fake_slack):
    notify(config)
    with connect_writer(config.warehouse) as con:
        later = [dataclasses.replace(c, run_date=NIGHT + dt.timedelta(days=1))
                 for c in (candidate(), candidate("performance_drop|toy|roc_auc|1d"))]
        lifecycle.apply(con, config, NIGHT + dt.timedelta(days=1), later)
        delivery.enqueue(con, config, NIGHT + dt.timedelta(days=1))
        result = delivery.deliver(con, config)
    assert result.failed == [] and len(result.sent) == 2
    updates = fake_slack.posts("chat.update")
    assert {u["channel"] for u in updates} == {FakeSlack.channel_id("#toy-alerts")}


def test_an_escalation_edits_the_message_and_tells_the_owner_in_the_thread_once(config, fake_slack):
    later = NIGHT + dt.timedelta(days=1)
    with connect_writer(config.warehouse) as con:
        lifecycle.apply(con, config, later - dt.timedelta(days=1), [dataclasses.replace(candidate("k"), severity="warning")])
    notify(config)
    [opened] = [m for m in fake_slack.in_channel("#toy-alerts") if "WARNING" in m["text"]]
    with connect_writer(config.warehouse) as con:
        result = lifecycle.apply(con, config, later, [dataclasses.replace(candidate("k"), run_date=later)])
    assert len(result.escalated) == 1
    notify(config, later)
    notify(config, later)                                   # a rerun says nothing again
    replies = fake_slack.in_channel("#toy-alerts", replies=True)
    assert len(replies) == 1 and replies[0]["thread_ts"] == opened["ts"]
    assert replies[0]["text"].startswith("@toy-owner") and "warning → critical" in replies[0]["text"]
    assert [p for p in fake_slack.posts() if p.get("thread_ts")][0]["reply_broadcast"] in (True, "1", "true", "True")
    assert opened["text"].startswith("CRITICAL")             # the message itself now says critical


def test_the_digest_lists_an_item_when_new_or_changed_and_otherwise_counts_it(tmp_path):
    config = toy_config(tmp_path, edit=lambda d: d["models"]["toy"]["playbooks"].update(drift="digest"))

    def drift(night, strength):
        return Candidate(kind="drift", model_name="toy", dedupe_key="drift|toy|session_length_s", severity="info",
                         title="toy: session_length_s drifted (no measured impact)", run_date=night, value=strength,
                         evidence={"feature": "session_length_s"})

    said = []
    for offset, strength in enumerate([2.0, 2.1, 1.9, 2.2, 3.5, 3.4]):
        night = NIGHT + dt.timedelta(days=offset)
        with connect_writer(config.warehouse) as con:
            ensure_tables(con, config)
            lifecycle.apply(con, config, night, [drift(night, strength)])
            delivery.enqueue(con, config, night)
            said.append(con.execute("SELECT message FROM ops.outbox WHERE kind = 'digest' AND run_date = ?",
                                    [night]).fetchone())
    # Night 0 new, nights 1-3 within 25% of what was listed (nothing sent), night 4 moved (listed again), 5 not.
    assert [s is not None for s in said] == [True, False, False, False, True, False]
    assert "1 drift item(s) without measured impact, new or changed" in json.loads(said[4][0])["status"]
