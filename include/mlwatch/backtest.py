"""What mlwatch would have done over a team's history: a backfill's alert backtest.

`mlwatch backfill --start A --end B` loads A..B, then replays the alert rules on every
night of the range with what that night knew: the partitions delivered up to it and the
labels that had arrived by it (every dbt model reads `_partition_date <= run date` and
labels by their day). The alerts those nights open, escalate, resolve and settle are
recorded in marts.alerts with origin 'backtest', as nightly runs of A..B would have left
them (tests/test_backtest.py compares the two). Nobody is told about them, except those
still open on night B, which B's delivery posts once, like any new alert, saying since when.

A replayed night is a nightly dbt run with two savings (dbt/macros/run_range.sql): no
data tests (the backfill's build of B runs them once), and marts.performance recomputes
only the window ends the rules read that night, its own and those whose labels are
complete that night where an estimate alert waits for its realized value, instead of
every end of the label horizon; it reads the predictions those windows and the label
horizon's daily figures need. The build of B then recomputes the whole range as a
plain backfill does. Nights the alert lifecycle has already judged are not replayed.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable

import duckdb

from mlwatch import transform
from mlwatch.alerts import lifecycle, rules
from mlwatch.alerts.rules import ESTIMATED_KINDS
from mlwatch.config import Config
from mlwatch.warehouse import connect_writer, table_exists, writer_lock

DAY = dt.timedelta(days=1)


def nights_to_replay(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date) -> list[dt.date]:
    """The nights before `end` from `start` that the alert lifecycle has not judged yet."""
    latest = con.execute("SELECT max(run_date) FROM ops.alert_nights").fetchone()[0] \
        if table_exists(con, "ops", "alert_nights") else None
    first = max(start, latest + DAY) if latest else start
    return [first + i * DAY for i in range((end - first).days)]


def settled_ends(con: duckdb.DuckDBPyConnection, config: Config, night: dt.date) -> list[tuple[str, dt.date]]:
    """The window ends whose labels are complete on `night` and that an unsettled estimate
    alert opened on: the settlement reads their realized value that night (alerts/settlement.py)."""
    if not table_exists(con, "marts", "alerts"):
        return []
    ends = set()
    for name, first_seen in con.execute(
            "SELECT model_name, first_seen FROM marts.alerts WHERE list_contains(?, kind) AND settled_on IS NULL",
            [sorted(ESTIMATED_KINDS)]).fetchall():
        model = config.models.get(name)
        if model is not None and first_seen + dt.timedelta(days=model.label_delay_days) == night:
            ends.add((name, first_seen))
    return sorted(ends)


# What a replayed night after the first need not build again: the staging views (the same
# on every night) and the marts no rule reads.
NOT_REBUILT = "path:models/staging feature_value"


def replay_night(config: Config, night: dt.date, *, first: bool = True) -> lifecycle.LifecycleResult:
    """One night as a nightly run would have judged it: the marts it reads, its rules, its
    lifecycle. `first`: the first night of a replay, which builds the staging views too."""
    with connect_writer(config.warehouse) as con:
        extra = settled_ends(con, config, night)
    with writer_lock(config.warehouse):
        transform.build(config, night, night, backtest_ends=extra, exclude=None if first else NOT_REBUILT)
    with connect_writer(config.warehouse) as con:
        candidates = rules.evaluate(con, config, night)
        return lifecycle.apply(con, config, night, candidates, backtest=True)


def replay(config: Config, start: dt.date, end: dt.date,
           progress: Callable[[str], None] | None = None) -> int:
    """Replay the nights start..end-1 not judged yet; returns how many were replayed."""
    with connect_writer(config.warehouse) as con:
        lifecycle.ensure_tables(con)
        nights = nights_to_replay(con, start, end)
    for i, night in enumerate(nights, 1):
        result = replay_night(config, night, first=i == 1)
        if progress:
            progress(f"night {night} ({i} of {len(nights)}): {len(result.opened)} opened, "
                     f"{len(result.escalated)} escalated, {len(result.resolved)} resolved, "
                     f"{len(result.digest)} in the digest")
    return len(nights)
