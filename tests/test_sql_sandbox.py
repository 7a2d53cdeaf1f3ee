"""Ad-hoc SQL reads the warehouse and nothing else (contract §4), tried as an attacker would.

The warehouse here is a small DuckDB file made directly: what is under test is the
connection and the statement check, not the marts.
"""

import os
import subprocess
import sys

import duckdb
import pytest

from mlwatch import adhoc, web
from mlwatch.errors import UsageError
from mlwatch.warehouse import connect_reader
from tests.helpers import toy_config

SECRET = "xoxb-sandbox-test-secret"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sandbox")
    path = folder / "warehouse" / "mlwatch.duckdb"
    path.parent.mkdir()
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA marts")
        con.execute("CREATE TABLE marts.performance AS SELECT 'toy' AS model_name, DATE '2026-03-01' + i::INTEGER AS window_end, "
                    "(0.9 - i / 100)::DOUBLE AS value FROM range(5) t(i)")
        con.execute("CREATE TABLE marts.constraint_ledger AS SELECT DATE '2026-03-01' AS day, 'telemetry' AS source, "
                    "'ingest' AS stage, 1 AS stage_order, true AS is_constraint")
    (folder / "next_to_it.csv").write_text("a\n1\n")
    assert toy_config(folder).warehouse == path
    return path


HOSTILE = [
    # files, by every reader DuckDB has
    ("SELECT content FROM read_text('/proc/self/environ')", "/proc/self/environ"),
    ("SELECT * FROM read_blob('/etc/*')", "/etc/*"),
    ("SELECT * FROM glob('/root/*')", "/root/*"),
    ("SELECT * FROM sniff_csv('/etc/passwd')", "/etc/passwd"),
    ("SELECT * FROM read_csv('/etc/passwd')", "/etc/passwd"),
    ("SELECT * FROM read_json('/etc/hostname')", "/etc/hostname"),
    ("SELECT * FROM read_parquet('{folder}/next_to_it.csv')", "next_to_it.csv"),
    ("SELECT * FROM read_text('{folder}/warehouse/../next_to_it.csv')", "next_to_it.csv"),
    ("SELECT * FROM glob('*')", "*"),
    # the network, which would also make DuckDB fetch the httpfs extension at query time
    ("SELECT * FROM read_parquet('http://127.0.0.1:9/x.parquet')", "http://127.0.0.1:9/x.parquet"),
    ("SELECT * FROM read_csv('https://example.org/x.csv')", "https://example.org/x.csv"),
    ("SELECT * FROM read_parquet('s3://bucket/x.parquet')", "s3://bucket/x.parquet"),
    # extensions and the state around them
    ("SELECT * FROM duckdb_extensions()", "extensions"),
    ("SELECT * FROM duckdb_secrets()", "stored_secrets"),
]


@pytest.mark.parametrize("query,named", HOSTILE)
def test_a_query_reaching_outside_the_warehouse_is_refused(warehouse, query, named):
    with pytest.raises(UsageError) as refused:
        adhoc.run_query(warehouse, query.format(folder=warehouse.parent.parent))
    message = str(refused.value)
    assert message.startswith("refused: Cannot access") and named in message
    assert "reads the warehouse and nothing else" in message and "--format csv" in message


@pytest.mark.parametrize("statement,reason", [
    ("INSTALL httpfs", "LOAD statement"),
    ("LOAD httpfs", "LOAD statement"),
    ("SET enable_external_access = true", "SET statement"),
    ("RESET lock_configuration", "SET statement"),
    ("PRAGMA enable_profiling", "PRAGMA statement"),
    ("CALL pragma_version()", "CALL statement"),
    ("ATTACH '/tmp/other.duckdb' AS o", "ATTACH statement"),
    ("COPY marts.performance TO '/tmp/leak.csv'", "COPY statement"),
    ("EXPORT DATABASE '/tmp/leak'", "EXPORT statement"),
    ("CREATE TEMP TABLE t AS SELECT 1", "CREATE statement"),
    ("SELECT 1; SELECT 2", "one statement per call and this holds 2"),
    ("SELECT 1 /* ; */ -- a comment\n; COPY (SELECT 1) TO '/tmp/leak.csv'", "the second begins: COPY"),
    ("SELECT ';'; ATTACH '/tmp/x.duckdb'", "the second begins: ATTACH"),
])
def test_statements_that_are_not_one_query_are_refused_before_they_run(warehouse, statement, reason):
    with pytest.raises(UsageError) as refused:
        adhoc.run_query(warehouse, statement)
    assert str(refused.value).startswith("refused:") and reason in str(refused.value)
    assert not os.path.exists("/tmp/leak.csv") and not os.path.exists("/tmp/leak")


def test_settings_stay_locked_even_inside_a_query(warehouse):
    with connect_reader(warehouse) as con:
        for statement in ("SET enable_external_access = true", "SET lock_configuration = false",
                          "SET TimeZone = 'Europe/Paris'"):
            with pytest.raises(duckdb.Error, match="configuration has been locked"):
                con.execute(statement)
        assert con.execute("SELECT current_setting('TimeZone'), current_setting('enable_external_access')"
                           ).fetchone() == ("UTC", False)


@pytest.mark.parametrize("query,expected", [
    ("SELECT count(*) FROM marts.performance", [(5,)]),
    ("WITH w AS (SELECT window_end, value, lag(value) OVER (ORDER BY window_end) AS before FROM marts.performance) "
     "SELECT count(*) FROM w WHERE value < before", [(4,)]),
    ("SELECT table_schema, table_name FROM information_schema.tables ORDER BY 2",
     [("marts", "constraint_ledger"), ("marts", "performance")]),
    ("SELECT ';' AS semicolon_in_a_string -- ; and in a comment", [(";",)]),
    ("FROM marts.performance SELECT max(value)", [(0.9,)]),
    ("SELECT * FROM query_table('marts.performance') LIMIT 1", None),
])
def test_analyst_queries_still_work(warehouse, query, expected):
    [result] = adhoc.run_query(warehouse, query)
    if expected is not None:
        assert [tuple(float(v) if hasattr(v, "as_tuple") else v for v in row) for row in result.rows] == expected
    else:
        assert len(result.rows) == 1


def test_the_slack_token_in_the_environment_cannot_be_read_through_the_command_line(warehouse):
    folder = warehouse.parent.parent
    result = subprocess.run(
        [sys.executable, "-m", "mlwatch.cli", "sql", "SELECT content FROM read_text('/proc/self/environ')"],
        cwd=folder, capture_output=True, text=True, timeout=300,
        env={**os.environ, "MLWATCH_SLACK_TOKEN": SECRET})
    assert result.returncode == 2
    assert SECRET not in result.stdout + result.stderr
    assert 'refused: Cannot access file "/proc/self/environ"' in result.stderr


def test_the_airflow_plugin_reads_through_the_same_sandbox(warehouse):
    """The plugin's queries are fixed, but it opens the same reader: prove the reader is sandboxed."""
    ledger = web.read_ledger(type("Config", (), {"warehouse": warehouse})(), "2026-03-01", "telemetry")
    assert ledger["rows"][0]["stage"] == "ingest"
    with connect_reader(warehouse) as con:
        with pytest.raises(duckdb.PermissionException):
            con.execute("SELECT * FROM read_text('/etc/passwd')")
