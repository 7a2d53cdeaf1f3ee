"""The `mlwatch` command line, run as a user runs it: exit codes, messages, read-only SQL."""

import datetime as dt
import json
import os
import subprocess
import sys

import duckdb
import pytest

from mlwatch import nightly, snapshot
from mlwatch.warehouse import writer_lock
from tests.helpers import toy_config, write_toy_day


def mlwatch(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "mlwatch.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    config = toy_config(folder)
    for offset in range(5):
        write_toy_day(config.landing, dt.date(2026, 3, 1) + dt.timedelta(days=offset))
    nightly.backfill(config, dt.date(2026, 3, 1), dt.date(2026, 3, 5))
    return config


def test_sql_answers_in_every_format(built):
    folder = built.source.rsplit("/", 1)[0]
    query = "select model_name, count(*) as n from raw.predictions group by 1"
    table = mlwatch("sql", query, cwd=folder)
    assert table.returncode == 0 and "toy" in table.stdout and "2000" in table.stdout
    assert mlwatch("sql", query, "--format", "csv", cwd=folder).stdout == "model_name,n\ntoy,2000\n"
    assert json.loads(mlwatch("sql", query, "--format", "json", cwd=folder).stdout) == [{"model_name": "toy", "n": 2000}]


def test_sql_tables_show_doubles_readably_and_csv_keeps_every_digit(built):
    folder = built.source.rsplit("/", 1)[0]
    query = ("select 0.8030280449930226::double as auc, 2206377.3099999996::double as ms, "
             "1.0058099305555557::double as util, 3 as n")
    table = mlwatch("sql", query, cwd=folder)
    assert table.returncode == 0
    assert "0.803028" in table.stdout and "2206377" in table.stdout and "1.00581" in table.stdout
    assert "0.80302804" not in table.stdout and "6 significant digits" in table.stdout
    csv = mlwatch("sql", query, "--format", "csv", cwd=folder).stdout
    assert csv.splitlines()[1] == "0.8030280449930226,2206377.3099999996,1.0058099305555557,3"


def test_sql_says_to_quote_a_column_named_like_a_keyword(built):
    folder = built.source.rsplit("/", 1)[0]
    result = mlwatch("sql", "select action_id, at from governance.actions", cwd=folder)
    assert result.returncode == 2 and 'must be quoted: "at"' in result.stderr
    assert mlwatch("sql", 'select action_id, "at" from governance.actions', cwd=folder).returncode == 0


@pytest.mark.parametrize("statement,refusal", [
    ("insert into raw.costs (model_name, component, cost_usd) values ('toy', 'x', 1)", "is read-only"),
    ("delete from marts.performance", "is read-only"),
    ("copy raw.predictions to '/tmp/leak.csv'", "is read-only"),
    ("attach '/tmp/other.duckdb'", "is read-only"),
    ("select 1; drop table raw.labels", "runs one statement per call"),
])
def test_sql_refuses_writes(built, statement, refusal):
    folder = built.source.rsplit("/", 1)[0]
    result = mlwatch("sql", statement, cwd=folder)
    assert result.returncode == 2
    assert f"refused: `mlwatch sql` {refusal}" in result.stderr
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw.labels").fetchone()[0] > 0


def test_sql_while_a_job_writes_reads_the_night_published_last(built):
    """A run holds the warehouse (here: rebuilding marts.performance, not committed yet):
    `mlwatch sql` reads the snapshot the last night published, says which night, and
    does not wait; with no snapshot it says what to do."""
    folder = built.source.rsplit("/", 1)[0]
    query = "select max(window_end), count(*) > 0 from marts.performance"
    con = duckdb.connect(str(built.warehouse))   # a running job holds the file
    try:
        con.execute("BEGIN")
        con.execute("DELETE FROM marts.performance")
        result = mlwatch("sql", query, "--format", "csv", cwd=folder)
        published = snapshot.path_of(built.warehouse)
        published.rename(published.with_name("aside"))
        try:
            refused = mlwatch("sql", query, cwd=folder)
        finally:
            published.with_name("aside").rename(published)
        con.execute("ROLLBACK")
    finally:
        con.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == "2026-03-05,True"
    assert "is being written by a running mlwatch job; reading the snapshot of the night of 2026-03-05" in result.stderr
    assert refused.returncode == 2
    assert "no night has published a snapshot to read meanwhile" in refused.stderr


def test_a_run_waiting_for_another_writer_says_so(built):
    folder = built.source.rsplit("/", 1)[0]
    with writer_lock(built.warehouse):
        result = mlwatch("run", "--date", "2026-03-05", cwd=folder, env={"MLWATCH_WRITER_WAIT_SECONDS": "1"})
    assert result.returncode != 0
    assert f"warehouse {built.warehouse} is being written by pid {os.getpid()}; waiting" in result.stderr
    assert "gave up after 1s waiting for the writer" in result.stderr


def test_bad_usage_and_bad_configuration_exit_2(built, tmp_path):
    folder = built.source.rsplit("/", 1)[0]
    result = mlwatch("run", "--date", "yesterday", cwd=folder)
    assert result.returncode == 2 and "--date must be a date as YYYY-MM-DD, got 'yesterday'" in result.stderr
    assert mlwatch("run", cwd=folder).returncode == 2                       # --date is required
    for command in (["run", "--date", "2026-03-01"], ["backfill", "--start", "2026-03-01", "--end", "2026-03-02"]):
        refused = mlwatch(*command, cwd=tmp_path)        # no configuration anywhere: refused, nothing built
        assert refused.returncode == 2 and f"no mlwatch.yml in {tmp_path}" in refused.stderr, refused.stderr
        assert not (tmp_path / "warehouse").exists()
    (tmp_path / "mlwatch.yml").write_text("models: {m: {task: classifier, reference: {start: 2026-01-01, end: 2026-01-02}}}")
    result = mlwatch("run", "--date", "2026-03-01", cwd=tmp_path)
    assert result.returncode == 2 and "models.m.task" in result.stderr and "'classifier'" in result.stderr


def test_run_with_bad_data_exits_1_names_the_file_and_completes_the_night(tmp_path):
    config = toy_config(tmp_path)
    write_toy_day(config.landing, dt.date(2026, 3, 1))
    bad = config.landing / "labels" / "dt=2026-03-02" / "broken.csv"
    write_toy_day(config.landing, dt.date(2026, 3, 2))
    bad.write_text("prediction_id,model_name,labeled_at\nx,toy,2026-03-02 10:00:00\n")
    result = mlwatch("run", "--date", "2026-03-02", cwd=tmp_path)
    assert result.returncode == 1
    assert f"{bad}: column label is missing (rule: required column" in result.stderr
    assert "the rest of the night completed" in result.stderr
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM marts.performance WHERE window_end = DATE '2026-03-02'").fetchone()[0] > 0


def test_run_exits_1_while_a_message_is_undelivered_and_deliver_sends_it_once(tmp_path):
    import socket

    from tests.slack_server import FakeSlack

    config = toy_config(tmp_path)
    write_toy_day(config.landing, dt.date(2026, 3, 1))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{probe.getsockname()[1]}/api/"
    slack = {"MLWATCH_SLACK_TOKEN": "xoxb-cli-test", "MLWATCH_SLACK_BASE_URL": refused}
    result = mlwatch("run", "--date", "2026-03-01", cwd=tmp_path, env=slack)
    assert result.returncode == 1, result.stderr
    assert "NOT DELIVERED report:#ml-alerts:2026-03-01 to #ml-alerts" in result.stderr
    assert "Connection refused" in result.stderr and "the next run sends them" in result.stderr
    assert "`mlwatch deliver` sends them now" in result.stderr
    assert "xoxb-cli-test" not in result.stderr + result.stdout
    assert mlwatch("deliver", cwd=tmp_path, env=slack).returncode == 1        # Slack still down

    server = FakeSlack(token="xoxb-cli-test").start()
    try:
        up = {**slack, "MLWATCH_SLACK_BASE_URL": server.base_url}
        sent = mlwatch("deliver", cwd=tmp_path, env=up)
        assert sent.returncode == 0 and "sent to Slack" in sent.stdout, sent.stderr
        again = mlwatch("deliver", cwd=tmp_path, env=up)
        assert again.returncode == 0 and "Nothing pending" in again.stdout
        assert len(server.posts()) == len(server.in_channel("#ml-alerts")) + len(server.in_channel("#toy-alerts")) >= 1
    finally:
        server.stop()


def test_tables_are_documented_where_analysts_look(built):
    folder = built.source.rsplit("/", 1)[0]
    listing = mlwatch("tables", cwd=folder)
    assert listing.returncode == 0 and "marts.performance" in listing.stdout and "quarantine.predictions" in listing.stdout
    columns = mlwatch("tables", "performance", cwd=folder)
    assert columns.returncode == 0 and "reference_value" in columns.stdout
    assert "The same metric over the model's reference period" in columns.stdout
    unknown = mlwatch("tables", "perf", cwd=folder)
    assert unknown.returncode == 2 and "did you mean marts.performance, marts.performance_estimated?" in unknown.stderr
    # Any SQL client sees the same descriptions: they are DuckDB's own comments.
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        undocumented = con.execute(
            "SELECT schema_name || '.' || table_name || '.' || column_name FROM duckdb_columns() "
            "WHERE schema_name = 'marts' AND table_name <> 'alerts' AND comment IS NULL").fetchall()
        tables = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name IN ('marts', 'quarantine', "
                             "'governance') AND comment IS NULL").fetchone()[0]
    assert undocumented == [] and tables == 0


def test_alerts_command_says_when_there_is_nothing_to_list(built):
    """The toy's five days page nothing: an empty list says so (tests/test_backtest.py
    lists alerts that are there)."""
    folder = built.source.rsplit("/", 1)[0]
    result = mlwatch("alerts", "--status", "open", cwd=folder)
    assert result.returncode == 0 and f"No open alerts in {built.warehouse}" in result.stdout
    quiet = mlwatch("alerts", "--status", "resolved", "--origin", "night", cwd=folder)
    assert quiet.returncode == 0 and "No resolved alerts opened by a nightly run in" in quiet.stdout
    assert mlwatch("alerts", "--status", "bogus", cwd=folder).returncode == 2
    assert mlwatch("alerts", "--origin", "bogus", cwd=folder).returncode == 2


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("day", ["2027-01-01", "2025-01-01"])
def test_report_for_a_day_without_data_is_refused_and_writes_nothing(built, day):
    folder = built.source.rsplit("/", 1)[0]
    before = _files(built.reports)
    assert (built.reports / "index.html").exists()
    result = mlwatch("report", "--date", day, cwd=folder)
    assert result.returncode == 2
    assert f"no data for {day}" in result.stderr
    assert "it has data for 2026-03-01 .. 2026-03-05" in result.stderr
    assert "mlwatch report --date 2026-03-05" in result.stderr and f"mlwatch run --date {day}" in result.stderr
    assert result.stdout == ""
    assert _files(built.reports) == before           # no page, no summary, the index untouched


def test_report_for_a_day_with_data_writes_the_page(built):
    folder = built.source.rsplit("/", 1)[0]
    result = mlwatch("report", "--date", "2026-03-03", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(built.reports / "daily" / "2026-03-03.html")
    assert 'href="daily/2026-03-03.html"' in (built.reports / "index.html").read_text()
