"""dbt's injection of ephemeral models into a model's SQL, without parsing the whole statement.

dbt 1.11 puts a model's ephemeral parents in front of its SQL as CTEs by parsing the
whole compiled statement with sqlparse only to find its leading WITH
(`dbt.compilation.inject_ctes_into_sql`). marts.performance compiles to about 130 KB of
SQL, and that parse took 0.8 s of its 1.8 s on a small night: more than DuckDB took to
run it, on every nightly run and on every night a backfill's backtest replays. A
statement that starts with WITH needs no parser to find it; `inject` handles that case
and hands every other statement to dbt's own function, so the SQL dbt runs is the same
string either way (tests/test_dbt_project.py compares the two on every model).
"""

from __future__ import annotations

import re
from typing import Callable

# What may stand before a statement's first keyword: whitespace and SQL comments.
_LEADING = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/)*", re.S)
# dbt injects after WITH, or after RECURSIVE when only whitespace separates the two, and
# after the whitespace that follows (sqlparse's insert_after skips it).
_WITH = re.compile(r"with\b(?:\s+recursive\b)?\s*", re.I)


def inject(sql: str, ctes: list, fallback: Callable[[str, list], str]) -> str:
    """`sql` with `ctes` (dbt's InjectedCTE: .sql is " name as (...)") first, as dbt writes it."""
    if not ctes:
        return sql
    start = _LEADING.match(sql).end()
    keyword = _WITH.match(sql, start)
    if keyword is None:
        return fallback(sql, ctes)
    return sql[:keyword.end()] + ", ".join(cte.sql for cte in ctes) + ", " + sql[keyword.end():]


def install() -> None:
    """Route dbt's injection through `inject` (once; a replacement already in place stays)."""
    import dbt.compilation as compilation

    original = compilation.inject_ctes_into_sql
    if getattr(original, "__module__", None) != "dbt.compilation":
        return

    def inject_ctes_into_sql(sql: str, ctes: list) -> str:
        return inject(sql, ctes, original)

    inject_ctes_into_sql.dbt_original = original
    compilation.inject_ctes_into_sql = inject_ctes_into_sql
