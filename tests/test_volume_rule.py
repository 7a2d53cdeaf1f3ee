"""A feed that went quiet opens an alert: no_data for nothing, volume_drop for far below usual.
Pinned on made-up marts.data_quality rows."""

import datetime as dt

import duckdb
import pytest

from mlwatch.alerts import volume
from tests.helpers import toy_config

NIGHT = dt.date(2026, 4, 29)     # a Wednesday


def night(tmp_path, rows, edit=None):
    config = toy_config(tmp_path, edit=edit)
    con = duckdb.connect()
    con.execute("CREATE SCHEMA marts")
    con.execute("CREATE TABLE marts.data_quality (model_name VARCHAR, feed VARCHAR, day DATE, n_rows BIGINT)")
    con.executemany("INSERT INTO marts.data_quality VALUES (?, ?, ?, ?)", rows)
    return {(c.kind, c.model_name, c.evidence["feed"]): c for c in volume.feed_volume(con, config, NIGHT)}


def steady(feed, n, days=28, model="toy", tonight=None):
    rows = [(model, feed, NIGHT - dt.timedelta(days=d), n) for d in range(1, days + 1)]
    return rows + ([(model, feed, NIGHT, tonight)] if tonight else [])


def test_a_feed_that_delivered_nothing_opens_no_data_naming_the_last_day(tmp_path):
    found = night(tmp_path, steady("predictions", 1000))
    alert = found[("no_data", "toy", "predictions")]
    assert alert.severity == "critical" and alert.value == 0 and alert.reference_value == 1000
    assert alert.title == f"No predictions for toy on {NIGHT}: the feed delivered nothing (usually 1,000 rows)"
    assert ("Last day with data", "2026-04-28") in alert.evidence["facts"]
    assert alert.since == NIGHT


@pytest.mark.parametrize("tonight, kind", [(300, "volume_drop"), (499, "volume_drop"), (500, None), (1200, None)])
def test_far_below_the_usual_weekday_volume_is_a_volume_drop(tmp_path, tonight, kind):
    found = night(tmp_path, steady("predictions", 1000, tonight=tonight))
    assert [k for k, _, _ in found] == ([kind] if kind else [])


def test_the_usual_volume_is_the_same_weekdays(tmp_path):
    # Weekends are quiet: 100 rows on Wednesdays is no drop when Wednesdays always carry 100.
    rows = [("toy", "predictions", NIGHT - dt.timedelta(days=d), 100 if d % 7 == 0 else 5000) for d in range(1, 29)]
    assert night(tmp_path, rows + [("toy", "predictions", NIGHT, 100)]) == {}


def test_without_enough_history_nothing_is_judged(tmp_path):
    assert night(tmp_path, steady("predictions", 1000, days=13)) == {}     # two earlier Wednesdays only


def test_bursty_labels_are_judged_on_silence_only(tmp_path):
    bursts = [("toy", "labels", NIGHT - dt.timedelta(days=d), 2000 if d % 2 else 100) for d in range(1, 29)]
    assert night(tmp_path, bursts + [("toy", "labels", NIGHT, 10)]) == {}  # low, but bursts are normal
    found = night(tmp_path, bursts)
    assert set(found) == {("no_data", "toy", "labels")} and found[("no_data", "toy", "labels")].severity == "warning"


def test_stage_telemetry_belongs_to_the_pipeline(tmp_path):
    def pipeline(data):
        data["pipeline"] = ["ingest", "inference"]
    found = night(tmp_path, steady("stages", 288, model="__pipeline__") + steady("predictions", 1000, tonight=990),
                  edit=pipeline)
    assert set(found) == {("no_data", "__pipeline__", "stages")}
    assert found[("no_data", "__pipeline__", "stages")].title.startswith("No stages for the pipeline on ")
