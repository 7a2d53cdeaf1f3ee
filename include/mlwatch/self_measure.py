"""mlwatch measures itself: each nightly step's rows and seconds, in the constraint ledger.

Every step records what it processed and how long it took in ops.step_runs (one row per
run date, step and part: the DAG ingests each feed in its own task), and then rewrites
the night's rows of source 'mlwatch' in marts.constraint_ledger, so the observability
pipeline shows its own bottleneck beside the serving pipeline's. A batch job's steps run
one after the other: its constraint is the step that took the longest, and relieving it
moves the constraint to the next longest.

Rows processed, per step: ingest and validation, input rows read and validated;
statistics, drift statistics written; backtest (a backfill's), nights replayed;
dbt_build, prediction rows in the span the build recomputes; alerting, alert candidates
judged; notify, messages handled; reporting, charts drawn.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from dataclasses import dataclass
from typing import Iterator

import duckdb

from mlwatch.warehouse import table_exists

STEPS = ["ingest", "validation", "statistics", "backtest", "dbt_build", "alerting", "notify", "reporting"]


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS ops")
    con.execute(
        "CREATE TABLE IF NOT EXISTS ops.step_runs (run_date DATE, step VARCHAR, part VARCHAR, "
        "rows_processed BIGINT, seconds DOUBLE, started_at TIMESTAMP, status VARCHAR, error VARCHAR)"
    )


@dataclass
class Measurement:
    rows: int = 0
    seconds: float = 0.0
    error: str | None = None
    started: float = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


@contextlib.contextmanager
def measuring() -> Iterator[Measurement]:
    """Time the block; the caller sets .rows. An exception is noted and re-raised."""
    measurement = Measurement(started=time.perf_counter())
    try:
        yield measurement
    except Exception as exc:
        measurement.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
        raise
    finally:
        measurement.seconds = measurement.elapsed()


@contextlib.contextmanager
def recorded(con: duckdb.DuckDBPyConnection, run_date: dt.date, step: str, part: str = "") -> Iterator[Measurement]:
    """Time the block and record it, also when it fails: the ledger then shows the step's error."""
    try:
        with measuring() as measurement:
            yield measurement
    finally:
        record(con, run_date, step, measurement, part)


def record(con: duckdb.DuckDBPyConnection, run_date: dt.date, step: str, measurement: Measurement,
           part: str = "") -> None:
    """Keep the step's measurement (a rerun replaces it) and refresh the night's ledger rows."""
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; steps are {STEPS}")
    ensure_tables(con)
    started_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=measurement.seconds)
    con.execute("DELETE FROM ops.step_runs WHERE run_date = ? AND step = ? AND part = ?", [run_date, step, part])
    con.execute("INSERT INTO ops.step_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [run_date, step, part, measurement.rows, round(measurement.seconds, 6), started_at,
                 "failed" if measurement.error else "ok", measurement.error])
    write_ledger(con, run_date)


def write_ledger(con: duckdb.DuckDBPyConnection, run_date: dt.date) -> int:
    """Replace the night's 'mlwatch' rows of marts.constraint_ledger (once dbt has created it)."""
    if not table_exists(con, "marts", "constraint_ledger"):
        return 0
    columns = {row[0] for row in con.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'marts' AND table_name = 'constraint_ledger'").fetchall()}
    order = "CASE step " + " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(STEPS, 1)) + " END"
    values = {
        "day": "run_date",
        "stage": "step",
        "source": "'mlwatch'",
        "stage_order": order,
        "records_in": "rows_processed",
        "records_out": "rows_processed",
        "seconds": "seconds",
        "capacity_rps": "rows_processed / nullif(seconds, 0)",
        "throughput_rps": "rows_processed / nullif(seconds, 0)",
        "offered_rps": "rows_processed / nullif(seconds, 0)",
        # A step's share of the night's wall-clock time.
        "utilization": "seconds / nullif(sum(seconds) OVER (), 0)",
        "failures": "failed_parts",
        "top_failure_mode": "error",
        "is_constraint": "row_number() OVER (ORDER BY seconds DESC, step) = 1",
        "constraint_rule": "CASE WHEN row_number() OVER (ORDER BY seconds DESC, step) = 1 "
                           "THEN 'longest_step' END",
        "next_constraint": "nth_value(step, 2) OVER (ORDER BY seconds DESC, step "
                           "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)",
        "relief_factor": "max(seconds) OVER () / nullif(nth_value(seconds, 2) OVER (ORDER BY seconds DESC, step "
                         "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING), 0)",
    }
    chosen = [c for c in values if c in columns]
    con.execute("DELETE FROM marts.constraint_ledger WHERE day = ? AND source = 'mlwatch'", [run_date])
    con.execute(
        f"INSERT INTO marts.constraint_ledger ({', '.join(chosen)}) "
        f"SELECT {', '.join(values[c] for c in chosen)} FROM ("
        "  SELECT run_date, step, sum(rows_processed) AS rows_processed, sum(seconds) AS seconds, "
        "         count(*) FILTER (WHERE status = 'failed') AS failed_parts, "
        "         max(error) AS error "
        "  FROM ops.step_runs WHERE run_date = ? GROUP BY run_date, step) AS steps",
        [run_date],
    )
    return con.execute("SELECT count(*) FROM marts.constraint_ledger WHERE day = ? AND source = 'mlwatch'",
                       [run_date]).fetchone()[0]
