"""A backfill's alert backtest (mlwatch.backtest): the alerts it records for the nights of
its range are those nightly runs of the same nights record, and nobody is told about them
but for those still open on its last night."""

import datetime as dt
import os
import subprocess
import sys

import duckdb
import pytest

from mlwatch import nightly
from mlwatch.alerts.load import alert_load
from mlwatch.demo.generator import DemoSpec, generate
from tests.helpers import write_config

# The demo's first 34 days at a small scale: the dirty export, the promotion the estimate
# sees before its labels, and the release's first days; labels 1-30 days late.
SPEC = DemoSpec(days=34, fraud_per_day=3_000, eta_per_day=300)
# What a nightly run and a replayed night must agree on, per alert. Not `since`, the first
# window end of the breach's unbroken run: a nightly run judges the earlier ends as known
# that night, a replayed night as known on their own nights (mlwatch.backtest), so a
# replayed estimate's run can start later.
DECIDED = ("dedupe_key", "kind", "model_name", "model_version", "segment", "segment_value", "severity", "playbook",
           "first_seen", "last_seen", "status", "resolved_on", "escalated_on", "escalated_from", "settlement",
           "settled_on", "unjudged_nights", "thread_alert_id", "window_days")


def small_windows(data):
    for model in data["models"].values():
        model["windows"] = [1, 7]


def rows(config, sql):
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        cursor = con.execute(sql)
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row)) for row in cursor.fetchall()]


def alerts(config):
    return rows(config, "SELECT * FROM marts.alerts ORDER BY dedupe_key, first_seen")


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    folder = tmp_path_factory.mktemp("backtest_landing")
    generate(folder, SPEC)
    return folder


@pytest.fixture(scope="module")
def nightly_runs(landing, tmp_path_factory):
    folder = tmp_path_factory.mktemp("nightly")
    config = write_config(folder, landing, edit=small_windows)
    night = SPEC.start
    while night <= SPEC.end:
        nightly.run_night(config, night)
        night += dt.timedelta(days=1)
    return config


@pytest.fixture(scope="module")
def backfilled(landing, tmp_path_factory):
    folder = tmp_path_factory.mktemp("backfill")
    config = write_config(folder, landing, edit=small_windows)
    return config, nightly.backfill(config, SPEC.start, SPEC.end)


def test_a_backfill_records_the_alerts_nightly_runs_record(nightly_runs, backfilled):
    config, report = backfilled
    assert report.replayed == SPEC.days - 1
    night = alerts(nightly_runs)
    replayed = alerts(config)
    # Enough happened for the comparison to mean something: paging alerts of several kinds
    # that open and resolve, and digest items.
    assert len({a["kind"] for a in night if a["status"] != "digest"}) >= 3
    assert any(a["status"] == "resolved" for a in night) and any(a["status"] == "digest" for a in night)
    assert [{k: a[k] for k in DECIDED} for a in replayed] == [{k: a[k] for k in DECIDED} for a in night]
    assert {a["origin"] for a in night} == {"night"} and {a["origin"] for a in replayed} == {"backtest"}


def test_the_backtest_leaves_the_marts_a_plain_build_makes(nightly_runs, backfilled):
    """The replayed nights recompute a few window ends each; the build of the last night
    then makes every mart what nightly runs made."""
    config, _ = backfilled
    query = ("SELECT * EXCLUDE (ranking_error_bound) FROM marts.performance "
             "ORDER BY ALL")
    assert rows(config, query) == rows(nightly_runs, query)


def test_only_alerts_still_open_on_the_last_night_are_told_and_a_rerun_tells_nothing(backfilled):
    config, _ = backfilled
    told = rows(config, "SELECT alert_id, run_date FROM ops.outbox WHERE kind = 'alert_opened'")
    open_on_end = [a for a in alerts(config) if a["status"] == "open"]
    assert open_on_end, "the small demo leaves alerts open on its last night"
    assert sorted(t["alert_id"] for t in told) == sorted(a["alert_id"] for a in open_on_end
                                                        if a["delivery"] == "message")
    assert {t["run_date"] for t in told} == {SPEC.end}
    # Resolved before the last night: never told. (Digest items still there on the last
    # night are listed in its digest, as a nightly run's would be.)
    past = [a for a in alerts(config) if a["status"] == "resolved"]
    assert past and all(a["delivery"] is None and a["notified_at"] is None for a in past)
    before_outbox = rows(config, "SELECT message_id FROM ops.outbox ORDER BY ALL")
    before_alerts = alerts(config)
    report = nightly.backfill(config, SPEC.start, SPEC.end)
    assert report.replayed == 0                       # every night was judged already
    assert rows(config, "SELECT message_id FROM ops.outbox ORDER BY ALL") == before_outbox
    assert alerts(config) == before_alerts


def test_the_load_counts_what_would_have_paged_per_night_and_channel(backfilled):
    config, report = backfilled
    paged = [a for a in alerts(config) if a["playbook"] != "digest"]
    assert report.load.total == len(paged)
    assert sum(report.load.by_kind.values()) == len(paged)
    assert report.load.digest == len(alerts(config)) - len(paged)
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        tight = alert_load(con, config.model_copy(update={"slack": config.slack.model_copy(
            update={"alerts_per_day": 0})}), SPEC.start, SPEC.end)
    assert [(n, c) for n, c, _ in tight.over_budget] == sorted(tight.pages)
    lines = "\n".join(report.load.lines())
    assert f"{report.load.total} alert(s) would have paged" in lines and "over budget: no night" in lines


def test_mlwatch_alerts_tells_the_backtest_s_alerts_apart(backfilled):
    config, _ = backfilled

    def listed(*args):
        done = subprocess.run([sys.executable, "-m", "mlwatch.cli", "alerts", *args, "-c", config.source],
                              capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "300"})
        assert done.returncode == 0, done.stderr
        return done.stdout

    replayed = listed("--origin", "backtest")
    assert "since" in replayed and "origin" in replayed      # when it began, and who opened it
    assert replayed.count(" backtest ") == len(alerts(config)) and " night " not in replayed
    assert listed("--status", "open").count(" backtest ") == len([a for a in alerts(config) if a["status"] == "open"])
    assert "No alerts opened by a nightly run in" in listed("--origin", "night")
