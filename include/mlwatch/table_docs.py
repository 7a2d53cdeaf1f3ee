"""The warehouse documents itself: every table's and column's description, where analysts look.

The descriptions live beside the models in the dbt project's YAML (models, and the
tables mlwatch writes from Python, declared there as sources). After each build they are
copied from dbt's manifest into DuckDB's own catalog (COMMENT ON), so that
`duckdb_tables()`, `duckdb_columns()`, any SQL client and `mlwatch tables` show them.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from mlwatch.warehouse import literal, quote


def described(manifest: Path) -> dict[tuple[str, str], tuple[str, dict[str, str]]]:
    """(schema, table) -> (its description, {column: description}) from dbt's manifest."""
    data = json.loads(Path(manifest).read_text())
    found = {}
    for node in [*data.get("nodes", {}).values(), *data.get("sources", {}).values()]:
        if node.get("resource_type") not in ("model", "source") or node.get("config", {}).get("materialized") == "ephemeral":
            continue
        name = node.get("identifier") or node.get("alias") or node["name"]
        columns = {c: " ".join((d.get("description") or "").split()) for c, d in node.get("columns", {}).items()}
        found[(node["schema"], name)] = (" ".join((node.get("description") or "").split()),
                                         {c: d for c, d in columns.items() if d})
    return found


def apply(con: duckdb.DuckDBPyConnection, manifest: Path) -> int:
    """COMMENT ON every documented table and column that exists; returns how many comments were set."""
    columns_of: dict[tuple[str, str], set[str]] = {}
    catalog = con.execute("SELECT schema_name, table_name, column_name FROM duckdb_columns()").fetchall()
    for schema, table, column in catalog:
        columns_of.setdefault((schema, table), set()).add(column)
    views = set(con.execute("SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal").fetchall())
    count = 0
    for (schema, table), (description, columns) in described(manifest).items():
        if (schema, table) not in columns_of:
            continue
        relation = f"{quote(schema)}.{quote(table)}"
        kind = "VIEW" if (schema, table) in views else "TABLE"
        if description:
            con.execute(f"COMMENT ON {kind} {relation} IS {literal(description)}")
            count += 1
        for column, text in columns.items():
            if column in columns_of[(schema, table)]:
                con.execute(f"COMMENT ON COLUMN {relation}.{quote(column)} IS {literal(text)}")
                count += 1
    return count
