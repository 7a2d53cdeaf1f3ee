"""The nightly job end to end: an alert reaches Slack once; reruns change nothing;
a backfill builds the same warehouse as the nightly runs it replaces."""

import datetime as dt
import json

import duckdb
import pytest

from mlwatch import nightly
from tests.helpers import fingerprint, toy_config, write_config, write_toy_day

START = dt.date(2026, 3, 1)


@pytest.fixture
def degrading_toy(tmp_path):
    """Good predictions 03-01..03-10 (the reference), noise from 03-11."""
    config = toy_config(tmp_path)
    for offset in range(14):
        day = START + dt.timedelta(days=offset)
        write_toy_day(config.landing, day, degraded=day >= dt.date(2026, 3, 11))
    return config


def alerts(config):
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        cursor = con.execute("SELECT * FROM marts.alerts ORDER BY alert_id")
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row)) for row in cursor.fetchall()]


def by_kind(config):
    return {a["kind"]: a for a in alerts(config)}


def test_alerts_reach_slack_once_are_edited_while_they_hold_and_a_rerun_sends_nothing(degrading_toy, fake_slack):
    config = degrading_toy

    def alert_posts():
        return [p for p in fake_slack.posts() if p["channel"] == "#toy-alerts"]

    def report_posts():     # the daily report's summary goes to the default channel, once a night
        return [p for p in fake_slack.posts() if p["channel"] == "#ml-alerts"]

    nightly.backfill(config, START, dt.date(2026, 3, 11))
    # 03-11: the scores turned to noise. No labels yet, but the score distribution moved.
    [drift] = alerts(config)
    assert (drift["kind"], drift["dedupe_key"]) == ("drift_with_impact", "drift_with_impact|toy|__score__")
    assert len(alert_posts()) == 1 and len(report_posts()) == 1
    assert "mlwatch daily report for 2026-03-11" in report_posts()[0]["text"]

    report = nightly.run_night(config, dt.date(2026, 3, 12))
    alert = by_kind(config)["performance_drop"]
    assert report.alerts.opened == [alert["alert_id"]]
    assert (alert["status"], alert["playbook"], alert["severity"]) == ("open", "retrain", "critical")
    assert alert["first_seen"] == alert["last_seen"] == dt.date(2026, 3, 12)
    assert alert["value"] < alert["ci_high"] < alert["reference_value"]
    post = alert_posts()[-1]
    assert post["channel"] == "#toy-alerts"
    assert "toy: roc_auc" in post["text"] and post["text"].startswith("@toy-owner CRITICAL")
    blocks = json.loads(post["blocks"]) if isinstance(post["blocks"], str) else post["blocks"]
    rendered = json.dumps(blocks)
    assert "Retrain on recent labeled data" in rendered and "Request retraining" in rendered
    assert alert["slack_ts"] and alert["slack_channel"] == "#toy-alerts" and alert["notified_at"]
    # The drift alert still holds: its message is edited, not posted again.
    assert len(alert_posts()) == 2 and len(report_posts()) == 2
    [edit] = fake_slack.posts("chat.update")
    assert edit["ts"] == by_kind(config)["drift_with_impact"]["slack_ts"]

    before = fingerprint(config.warehouse)
    nightly.run_night(config, dt.date(2026, 3, 12))   # rerun of the same night
    assert fingerprint(config.warehouse) == before
    assert len(alert_posts()) == 2 and len(report_posts()) == 2 and len(fake_slack.posts("chat.update")) == 1

    nightly.run_night(config, dt.date(2026, 3, 13))   # the drop holds: same alert, edited
    alert = by_kind(config)["performance_drop"]
    assert alert["first_seen"] == dt.date(2026, 3, 12) and alert["last_seen"] == dt.date(2026, 3, 13)
    assert len(alert_posts()) == 2 and len(report_posts()) == 3
    assert {u["ts"] for u in fake_slack.posts("chat.update")} == {a["slack_ts"] for a in alerts(config)}
    # A retrain request was recorded for the retrain playbook's alert.
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        requests = con.execute("SELECT alert_id, asset FROM governance.actions WHERE action = 'retrain_request'"
                               ).fetchall()
        text = json.dumps(con.execute("SELECT * FROM ops.outbox").fetchall(), default=str)
    assert requests == [(alert["alert_id"], "mlwatch/retrain/toy")]
    assert fake_slack.token not in text


def test_a_night_without_data_is_no_all_clear(degrading_toy):
    config = degrading_toy
    nightly.backfill(config, START, dt.date(2026, 3, 12))
    opened = {a["alert_id"] for a in alerts(config) if a["status"] == "open"}
    assert opened
    # Nothing has landed for 03-20: no predictions, no labels. Nothing can be judged, so nothing resolves.
    report = nightly.run_night(config, dt.date(2026, 3, 20))
    assert report.alerts.resolved == [] and set(report.alerts.unjudged) == opened
    assert {a["alert_id"] for a in alerts(config) if a["status"] == "open"} == opened
    outbox = [json.loads(line) for line in (config.reports / "outbox.jsonl").read_text().splitlines()]
    said = [m for m in outbox if m["message_id"].endswith(":unjudged:2026-03-20")]
    assert len(said) == len(opened)
    assert all("Not judged on 2026-03-20" in json.dumps(m["blocks"]) for m in said)


def test_alert_resolves_when_the_condition_clears(degrading_toy, tmp_path):
    config = degrading_toy
    # From 03-14 on the model is good again.
    for offset in range(13, 20):
        write_toy_day(config.landing, START + dt.timedelta(days=offset))
    nightly.backfill(config, START, dt.date(2026, 3, 12))
    for day in range(13, 19):
        nightly.run_night(config, dt.date(2026, 3, day))
    alert = by_kind(config)["performance_drop"]
    assert alert["status"] == "resolved" and alert["first_seen"] == dt.date(2026, 3, 12)
    assert alert["resolved_on"] > alert["last_seen"]
    # Outbox only: no Slack configured in this test.
    outbox = [json.loads(line) for line in (config.reports / "outbox.jsonl").read_text().splitlines()]
    mine = [m["kind"] for m in outbox if m["message_id"].startswith(alert["alert_id"])]
    assert mine[0] == "alert_opened" and mine[-1] == "alert_resolved" and mine.count("alert_opened") == 1


def test_backfill_equals_nightly_runs_day_by_day(demo_landing, tmp_path):
    # card_fraud's calibration takes labels until 2026-09-20 (reference end + 30 days): the
    # first nights estimate every window again, the last ones only their own day's.
    first, last = dt.date(2026, 9, 18), dt.date(2026, 9, 23)
    (tmp_path / "nightly").mkdir()
    (tmp_path / "backfill").mkdir()
    day_by_day = write_config(tmp_path / "nightly", demo_landing)
    one_pass = write_config(tmp_path / "backfill", demo_landing)
    day = first
    while day <= last:
        nightly.run_night(day_by_day, day)
        day += dt.timedelta(days=1)
    nightly.backfill(one_pass, first, last)
    # Alerts record who decided them and what was told (a backfill tells only what is still
    # open on its last night: tests/test_backtest.py compares the decisions themselves),
    # and governance acts on the nights mlwatch ran.
    decisions = {"marts.alerts", "ops.outbox", "ops.alert_nights", "governance.actions"}
    # The estimate's stored day rows hold the days the last run read, and a backfill
    # reads from its first night's label horizon on: a cache, not a figure.
    caches = {"intermediate.int_estimated_days"}
    a = {k: v for k, v in fingerprint(day_by_day.warehouse).items() if k not in decisions | caches}
    b = {k: v for k, v in fingerprint(one_pass.warehouse).items() if k not in decisions | caches}
    assert a == b
    assert a["marts.performance"][0] > 1000 and a["raw.predictions"][0] > 50_000


def test_progress_says_what_each_phase_is_doing_and_a_backfill_names_only_the_notable_partitions(tmp_path,
                                                                                               monkeypatch):
    from mlwatch import transform

    monkeypatch.setattr(transform, "HEARTBEAT_SECONDS", 0.05)   # every dbt node is "slow"
    config = toy_config(tmp_path)
    for offset in range(12):
        write_toy_day(config.landing, START + dt.timedelta(days=offset))
    (config.landing / "predictions" / "dt=2026-03-05" / "extra.csv").write_text(
        "prediction_id,model_name,model_version,event_at,predicted_at,score\n"
        "bad-1,toy,1.0,2026-03-05 10:00:00,2026-03-05 10:00:01,7\n")
    said: list[str] = []
    nightly.backfill(config, START, START + dt.timedelta(days=11), progress=said.append)
    predictions = [line for line in said if line.startswith("ingest predictions")]
    assert predictions[0] == "ingest predictions: reading 12 partition(s)"
    assert predictions[1].startswith("ingest predictions: checking ") and "rows against the contract" in predictions[1]
    # Of the partitions, only the one that quarantined a row; then the feed's total.
    assert [line for line in predictions if "dt=" in line] == \
        ["ingest predictions dt=2026-03-05: 400 accepted, 1 quarantined"]
    assert predictions[-1].endswith(" rows accepted, 1 quarantined over 12 partition(s)")
    assert any(line.startswith("drift toy: ") and "window end(s)" in line for line in said)
    # dbt reports a model when it ends: while one runs, progress names it.
    assert any(line.startswith("dbt still running ") and "performance (" in line for line in said)

    said.clear()
    write_toy_day(config.landing, START + dt.timedelta(days=12))
    nightly.run_night(config, START + dt.timedelta(days=12), progress=said.append)
    assert "ingest predictions dt=2026-03-13: 400 accepted, 0 quarantined" in said    # a night names its partition


def test_the_nights_key_test_checks_its_own_partitions_against_all_history(tmp_path):
    """The uniqueness test on raw.predictions looks up only the keys of the night's
    partitions (so that it does not grow with history), each against every partition: a
    prediction id of the night that was loaded before (slipped past ingest here) fails
    the build, naming the test."""
    from mlwatch import transform
    from mlwatch.warehouse import connect_writer
    config = toy_config(tmp_path)
    days = [dt.date(2026, 3, 1) + dt.timedelta(days=i) for i in range(3)]
    for day in days:
        write_toy_day(config.landing, day)
    nightly.backfill(config, days[0], days[1])
    nightly.step_ingest(config, days[2])
    with connect_writer(config.warehouse) as con:
        con.execute(f"""INSERT INTO raw.predictions BY NAME
                        SELECT * REPLACE (DATE '{days[2]}' AS _partition_date)
                        FROM raw.predictions WHERE _partition_date = DATE '{days[0]}' LIMIT 1""")
    with pytest.raises(transform.TransformError, match="unique_combination_of_columns_stg_raw__predictions"):
        transform.build(config, days[2])
