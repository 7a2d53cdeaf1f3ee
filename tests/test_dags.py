"""The DAGs: they import, follow the house rules, do no I/O at parse time, and run."""

import datetime as dt
import json
import subprocess
import sys
import textwrap

import duckdb
import pytest

from tests.conftest import REPO
from tests.helpers import write_config

DAGS = REPO / "dags"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_every_dag_imports(dagbag):
    assert dagbag.import_errors == {}
    assert {"mlwatch_nightly", "mlwatch_backfill"} <= set(dagbag.dag_ids)


def test_nightly_schedule_and_concurrency(dagbag):
    from airflow.sdk import CronDataIntervalTimetable

    dag = dagbag.dags["mlwatch_nightly"]
    # A data-interval timetable: the run with logical date D starts once day D is over.
    assert isinstance(dag.timetable, CronDataIntervalTimetable) and dag.timetable.expression == "0 0 * * *"  # @daily
    assert str(dag.timetable.timezone) == "UTC"
    assert dag.catchup is False and dag.max_active_runs == 1
    backfill = dagbag.dags["mlwatch_backfill"]
    assert backfill.schedule is None and set(backfill.params) == {"start", "end"}


@pytest.mark.parametrize("dag_id", ["mlwatch_nightly", "mlwatch_backfill"])
def test_task_policies(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert "mlwatch" in dag.tags
    for task in dag.tasks:
        assert task.owner == "mlwatch", task.task_id
        # Tasks that write the warehouse go one at a time across all runs and DAGs.
        if task.task_id != "all_feeds_loaded":
            assert task.pool == "duckdb_writer", task.task_id
    # The first task after the feeds runs even when one of them failed: the rest of the night goes on.
    assert dag.get_task("build" if dag_id == "mlwatch_nightly" else "backtest").trigger_rule == "all_done"


def test_no_io_and_no_heavy_imports_at_parse_time(tmp_path):
    """Parse the DAG files in a fresh interpreter that records every file opened and
    every connection attempted while it parses."""
    config = tmp_path / "mlwatch.yml"
    config.write_text("this file must not be read at parse time")
    script = textwrap.dedent(f"""
        import json, sys
        events = []
        def hook(event, args):
            if event == "open" and isinstance(args[0], str):
                events.append(("open", args[0]))
            elif event in ("socket.connect", "subprocess.Popen"):
                events.append((event, str(args[1] if len(args) > 1 else args)))
        from airflow.dag_processing.dagbag import DagBag
        sys.addaudithook(hook)
        bag = DagBag(dag_folder={str(DAGS)!r})
        print(json.dumps({{"errors": {{k: str(v) for k, v in bag.import_errors.items()}},
                          "dags": sorted(bag.dag_ids), "events": events,
                          "modules": sorted(m for m in sys.modules if m.split('.')[0] in
                                            ("mlwatch", "duckdb", "dbt", "great_expectations", "slack_sdk"))}}))
    """)
    env = {**__import__("os").environ, "MLWATCH_CONFIG": str(config),
           "MLWATCH_LANDING": str(tmp_path / "landing"), "MLWATCH_WAREHOUSE": str(tmp_path / "w.duckdb")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["errors"] == {} and "mlwatch_nightly" in report["dags"]
    assert report["modules"] == []
    touched = [path for kind, path in report["events"] if kind == "open" and str(tmp_path) in path]
    assert touched == []
    assert [e for e in report["events"] if e[0] != "open"] == []


def test_nightly_dag_run_on_demo_data_fills_the_marts(airflow_db, dagbag, demo_landing, tmp_path, monkeypatch):
    config = write_config(tmp_path, demo_landing)
    monkeypatch.setenv("MLWATCH_CONFIG", str(config.source))
    day = dt.date(2026, 9, 10)
    dag = dagbag.dags["mlwatch_nightly"]
    run = dag.test(logical_date=dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc))
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    assert set(states.values()) == {"success"}
    loaded = run.get_task_instance("all_feeds_loaded").xcom_pull(task_ids="all_feeds_loaded")
    assert loaded["predictions"]["rows_accepted"] > 40_000
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        by_model = dict(con.execute(
            "SELECT model_name, count(*) FROM marts.performance WHERE window_end = ? GROUP BY 1", [day]).fetchall())
        loaded = con.execute("SELECT max(partition_date) FROM ops.ingest_partitions").fetchone()[0]
    assert set(by_model) == {"card_fraud", "delivery_eta"} and min(by_model.values()) >= 12
    assert loaded == day   # nothing after the night it processed


def test_a_bad_partition_or_an_undelivered_message_fails_its_task_and_the_night_goes_on(
        airflow_db, dagbag, demo_landing, tmp_path, monkeypatch):
    import shutil
    import socket

    with socket.socket() as probe:           # a port nobody listens on: Slack refuses the connection
        probe.bind(("127.0.0.1", 0))
        refused = probe.getsockname()[1]
    monkeypatch.setenv("MLWATCH_SLACK_TOKEN", "xoxb-not-reached")
    monkeypatch.setenv("MLWATCH_SLACK_BASE_URL", f"http://127.0.0.1:{refused}/api/")

    landing = tmp_path / "landing"
    shutil.copytree(demo_landing, landing, ignore=lambda d, names: [n for n in names if n > "dt=2026-08-10"
                                                                    and n.startswith("dt=")])
    (landing / "costs" / "dt=2026-08-10" / "costs.csv").write_text("model,what\ncard_fraud,compute\n")
    config = write_config(tmp_path, landing)
    monkeypatch.setenv("MLWATCH_CONFIG", str(config.source))
    run = dagbag.dags["mlwatch_nightly"].test(logical_date=dt.datetime(2026, 8, 10, tzinfo=dt.timezone.utc))
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["ingest_costs"] == "failed" and states["all_feeds_loaded"] == "upstream_failed"
    assert {states[t] for t in ("ingest_predictions", "ingest_labels", "ingest_stages", "build",
                                "evaluate_alerts", "notify")} == {"success"}
    # Slack refused the report's summary (the night raised no alert): its task fails, the page is written.
    assert states["report"] == "failed"
    assert (config.reports / "daily" / "2026-08-10.html").exists()
    assert run.state == "failed"
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        error = con.execute("SELECT error FROM ops.ingest_partitions WHERE status = 'failed'").fetchone()[0]
        assert con.execute("SELECT count(*) FROM ops.outbox WHERE status = 'pending'").fetchone()[0] >= 1
        assert con.execute("SELECT count(*) FROM marts.performance WHERE window_end = DATE '2026-08-10'").fetchone()[0] > 0
    assert "costs/dt=2026-08-10/costs.csv: column model_name is missing (rule: required column" in error
