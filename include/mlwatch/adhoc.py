"""Read-only ad-hoc SQL over the warehouse (`mlwatch sql`).

Two guards, because a query string is untrusted. Before DuckDB runs anything, the string
must hold exactly one statement and it must be a query, so a typo cannot change the
warehouse and a second statement cannot hide behind a first. The connection itself
(warehouse.connect_reader) can read the warehouse file and nothing else, so even a query
that is a SELECT cannot reach a file, the network or an extension.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from mlwatch.errors import UsageError
from mlwatch.warehouse import connect_reader

ALLOWED = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple]


def check_read_only(sql: str) -> list[str]:
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise UsageError(f"cannot parse the query: {str(exc).splitlines()[0]}") from None
    if not statements:
        raise UsageError("no SQL statement given")
    if len(statements) > 1:
        raise UsageError(
            f"refused: `mlwatch sql` runs one statement per call and this holds {len(statements)} "
            f"(the second begins: {statements[1].query.strip()[:60]}); run them one at a time"
        )
    for statement in statements:
        if statement.type not in ALLOWED:
            kind = statement.type.name.replace("_", " ")
            raise UsageError(
                f"refused: `mlwatch sql` is read-only and this is a {kind} statement "
                f"({statement.query.strip()[:60]}); only queries (SELECT, WITH, FROM, DESCRIBE, SHOW, EXPLAIN) run here"
            )
    return [s.query for s in statements]


def run_query(warehouse: Path, sql: str) -> list[QueryResult]:
    try:
        statements = check_read_only(sql)
    except UsageError as exc:
        if str(exc).startswith("cannot parse"):
            raise UsageError(str(exc) + _keyword_columns_hint(warehouse, sql)) from None
        raise
    results = []
    with connect_reader(warehouse) as con:
        for statement in statements:
            try:
                cursor = con.execute(statement)
            except duckdb.PermissionException as exc:
                what = str(exc).splitlines()[0].removeprefix("Permission Error: ").split(" - ")[0]
                raise UsageError(
                    f"refused: {what}. `mlwatch sql` reads the warehouse and nothing else (no other file, no "
                    "network, no extension); to export a result, use --format csv or --format json and "
                    "redirect the output"
                ) from None
            except duckdb.Error as exc:
                if "configuration has been locked" in str(exc):
                    raise UsageError("refused: `mlwatch sql` cannot change DuckDB's settings: "
                                     f"{str(exc).splitlines()[0]}") from None
                raise UsageError(f"query failed: {str(exc).strip()}") from None
            columns = [d[0] for d in cursor.description] if cursor.description else []
            results.append(QueryResult(columns=columns, rows=cursor.fetchall() if columns else []))
    return results


def _keyword_columns_hint(warehouse: Path, sql: str) -> str:
    """Warehouse columns named like an SQL keyword that the query uses unquoted (such as
    governance.actions' `at`): DuckDB's parser error names the token after them."""
    with connect_reader(warehouse) as con:
        names = [name for (name,) in con.execute(
            "SELECT DISTINCT c.column_name FROM information_schema.columns AS c "
            "JOIN duckdb_keywords() AS k ON lower(c.column_name) = k.keyword_name "
            "WHERE k.keyword_category <> 'unreserved' ORDER BY 1").fetchall()]
    used = [name for name in names if re.search(rf'(?<![\w"]){re.escape(name)}(?![\w"])', sql, re.IGNORECASE)]
    if not used:
        return ""
    quoted = ", ".join(f'"{name}"' for name in used)
    return f". Columns named like SQL keywords must be quoted: {quoted}"


def _plain(value):
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def to_csv(result: QueryResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows([[_plain(v) for v in row] for row in result.rows])
    return out.getvalue()


def to_json(result: QueryResult) -> str:
    return json.dumps([{c: _plain(v) for c, v in zip(result.columns, row)} for row in result.rows],
                      indent=1, default=str)
