"""Early warning before labels: the estimated_performance_drop rule on hand-made
marts.performance_estimated rows, and its settlement by the labels (confirmed in the same
Slack thread, or withdrawn), through the real slack-sdk client and a local Slack server."""

import dataclasses
import datetime as dt

import duckdb
import pytest

from mlwatch.alerts import delivery, lifecycle, rules
from mlwatch.alerts.candidate import Candidate
from mlwatch.ingest import ensure_tables
from mlwatch.warehouse import connect_writer
from tests.helpers import toy_config

NIGHT = dt.date(2026, 3, 20)
ESTIMATED_DDL = ("CREATE TABLE marts.performance_estimated (model_name VARCHAR, model_version VARCHAR, "
                 "segment VARCHAR, segment_value VARCHAR, window_end DATE, window_days INTEGER, metric VARCHAR, "
                 "estimated_value DOUBLE, ci_low DOUBLE, ci_high DOUBLE, reference_estimated_value DOUBLE, "
                 "reference_value DOUBLE, n_predictions BIGINT, label_coverage DOUBLE, realized_value DOUBLE, "
                 "is_reliable BOOLEAN, unreliable_reason VARCHAR)")


@pytest.fixture
def config(tmp_path):
    def edit(data):
        data["models"]["toy"]["windows"] = [1, 7, 30]
        data["models"]["toy"]["slos"]["performance"] = {"metric": "roc_auc", "max_relative_drop": 0.01,
                                                        "min_labeled": 500, "window_days": 7}
    config = toy_config(tmp_path, edit=edit)
    with connect_writer(config.warehouse) as con:
        ensure_tables(con, config)
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        con.execute(ESTIMATED_DDL)
    return config


def estimate(config, night, days, value, low, high, reference=0.971, n=3000, *, realized=None,
             reliable=True, realized_reference=0.970):
    with connect_writer(config.warehouse) as con:
        con.execute("DELETE FROM marts.performance_estimated WHERE window_end = ? AND window_days = ?", [night, days])
        con.execute("INSERT INTO marts.performance_estimated VALUES ('toy', '__all__', '__all__', '__all__', ?, ?, "
                    "'roc_auc', ?, ?, ?, ?, ?, ?, 0.1, ?, ?, ?)",
                    [night, days, value, low, high, reference, realized_reference, n, realized, reliable,
                     None if reliable else "the scores in the window moved away from those of the reference"])


def early_warnings(config, night=NIGHT):
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        return rules.estimated_performance_drop(con, config, night)


def test_an_estimated_drop_pages_before_the_labels_and_says_it_is_an_estimate(config):
    estimate(config, NIGHT, 7, 0.90, 0.885, 0.915)
    estimate(config, NIGHT, 30, 0.95, 0.945, 0.955, n=12000)
    [alert] = early_warnings(config)
    assert alert.kind == "estimated_performance_drop" and alert.severity == "critical"
    assert alert.dedupe_key == "estimated_performance_drop|toy|roc_auc|7d" and alert.window_days == 7
    assert alert.title == ("toy: estimated roc_auc 0.9000 is 7.3% worse than its reference 0.9710 "
                           "(estimated from scores, 10.0% labeled so far)")
    facts = dict(alert.evidence["facts"])
    assert facts["Evidence"] == ("an estimate from the scores of 3,000 predictions, calibrated on the reference's "
                                 "labels; 10.0% of them labeled so far")
    assert "(realized 0.9700)" in facts["How bad"]
    assert "confirms or withdraws this alert" in facts["Labels"]


@pytest.mark.parametrize("rows", [
    [(7, 0.971, 0.965, 0.977), (30, 0.971, 0.968, 0.974)],          # the reference's own level
    [(7, 0.966, 0.954, 0.978), (30, 0.968, 0.963, 0.973)],          # noise: the intervals hold the reference
])
def test_no_early_warning_without_the_evidence(config, rows):
    for days, *numbers in rows:
        estimate(config, NIGHT, days, *numbers)
    assert early_warnings(config) == []


def test_no_early_warning_from_an_unreliable_estimate(config):
    estimate(config, NIGHT, 7, 0.90, 0.885, 0.915, reliable=False)
    assert early_warnings(config) == []


# --- settlement ----------------------------------------------------------------------------------------------

REALIZED = Candidate(kind="performance_drop", model_name="toy", dedupe_key="performance_drop|toy|roc_auc|7d",
                     severity="critical", title="toy: roc_auc 0.9000 is 7.3% worse than its reference 0.9710",
                     run_date=NIGHT, metric="roc_auc", window_days=7, value=0.9, reference_value=0.971,
                     model_version="__all__", segment="__all__", segment_value="__all__")


def night(config, when, realized=()):
    """The night's lifecycle and delivery: the rule's estimated candidates, and `realized` ones."""
    found = early_warnings(config, when) + [dataclasses.replace(c, run_date=when) for c in realized]
    with connect_writer(config.warehouse) as con:
        result = lifecycle.apply(con, config, when, found)
        delivery.enqueue(con, config, when)
        delivery.deliver(con, config)
    return result


def stored(config):
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        cursor = con.execute("SELECT * FROM marts.alerts ORDER BY first_seen, kind")
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row)) for row in cursor.fetchall()]


def test_a_confirmed_estimate_is_continued_in_its_thread_by_the_realized_alert(config, fake_slack):
    estimate(config, NIGHT, 7, 0.90, 0.885, 0.915)
    night(config, NIGHT)
    [opened] = fake_slack.in_channel("#toy-alerts")
    assert "estimated roc_auc" in opened["text"]
    later = NIGHT + dt.timedelta(days=3)
    for i in (1, 2, 3):
        estimate(config, NIGHT + dt.timedelta(days=i), 7, 0.90, 0.885, 0.915)
    night(config, NIGHT + dt.timedelta(days=1))
    night(config, NIGHT + dt.timedelta(days=2))
    result = night(config, later, [REALIZED])
    night(config, later, [REALIZED])                                 # a rerun says nothing again
    estimated, realized = stored(config)
    assert result.settled == [estimated["alert_id"]]
    assert (estimated["settlement"], estimated["settled_on"], estimated["status"]) == ("confirmed", later, "resolved")
    assert estimated["settlement_detail"].startswith("the labels confirm it: toy: roc_auc 0.9000")
    assert realized["thread_alert_id"] == estimated["alert_id"] and realized["status"] == "open"
    # One message in the channel: the warning. The realized alert is told in its thread (shown in
    # the channel too), and so is the confirmation; the warning's message now says "Confirmed".
    assert [m["ts"] for m in fake_slack.in_channel("#toy-alerts")] == [opened["ts"]]
    replies = fake_slack.in_channel("#toy-alerts", replies=True)
    assert [r["thread_ts"] for r in replies] == [opened["ts"], opened["ts"]]
    assert sum("CRITICAL" in r["text"] and "0.9000 is 7.3% worse" in r["text"] for r in replies) == 1
    assert sum(r["text"].startswith(":red_circle: Confirmed on") for r in replies) == 1
    assert fake_slack.in_channel("#toy-alerts")[0]["text"].startswith("Confirmed by labels: toy: estimated")
    broadcast = [p for p in fake_slack.posts() if p.get("thread_ts") and "0.9000 is 7.3% worse" in p.get("text", "")]
    assert broadcast and broadcast[0]["reply_broadcast"] in (True, "1", "true", "True")
    # The realized alert's own thread replies go to the same thread.
    with connect_writer(config.warehouse) as con:
        lifecycle.apply(con, config, later + dt.timedelta(days=1), [])     # realized alert unjudged: stays open
    assert stored(config)[1]["status"] == "open"


def test_a_withdrawn_estimate_says_so_in_its_thread_and_does_not_page_again_within_the_horizon(config, fake_slack):
    estimate(config, NIGHT, 7, 0.90, 0.885, 0.915)
    night(config, NIGHT)
    # Labels are in for the window that fired it (toy: label_delay_days 5): within tolerance.
    settled_night = NIGHT + dt.timedelta(days=5)
    for i in range(1, 5):
        estimate(config, NIGHT + dt.timedelta(days=i), 7, 0.90, 0.885, 0.915)
        night(config, NIGHT + dt.timedelta(days=i))
    assert stored(config)[0]["settlement"] is None
    estimate(config, NIGHT, 7, 0.90, 0.885, 0.915, realized=0.968)
    estimate(config, settled_night, 7, 0.90, 0.885, 0.915)
    result = night(config, settled_night)
    [alert] = stored(config)
    assert result.settled == [alert["alert_id"]]
    assert (alert["settlement"], alert["status"]) == ("withdrawn", "resolved")
    assert alert["settlement_detail"] == ("the labels withdraw it: the realized roc_auc of the 7-day window ending "
                                          "2026-03-20 is 0.9680 against the reference 0.9700, within tolerance")
    [reply] = fake_slack.in_channel("#toy-alerts", replies=True)
    assert reply["text"].startswith(":white_check_mark: Withdrawn on 2026-03-25: the labels withdraw it")
    # The estimate still says "drop" the next night: labels disagreed within the horizon, so no new page.
    following = settled_night + dt.timedelta(days=1)
    estimate(config, following, 7, 0.90, 0.885, 0.915)
    [again] = early_warnings(config, following)
    assert again.suppressed_by == alert["alert_id"]
    night(config, following)
    assert len(stored(config)) == 1 and len(fake_slack.in_channel("#toy-alerts")) == 1
