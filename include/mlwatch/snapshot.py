"""The published snapshot: what readers see while a run writes the warehouse.

DuckDB lets no other process open a file that a writer has open, so `mlwatch sql`, the
Airflow plugin and every other reader would wait out a whole night. At the end of each
night (and backfill), once its report is written, the warehouse file is copied beside
itself and renamed into place in one step; a reader that finds the warehouse busy opens
that copy instead (warehouse.connect_reader) and says which night it shows.

The copy keeps the warehouse's file name in a folder of its own, so that DuckDB names its
catalog the same and a query that spells `mlwatch.marts.performance` works on both.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import duckdb

from mlwatch.warehouse import connect_writer, writer_lock

FOLDER = ".published"


def path_of(warehouse: Path) -> Path:
    warehouse = Path(warehouse)
    return warehouse.parent / FOLDER / warehouse.name


def publish(warehouse: Path, night: dt.date) -> Path:
    """Copy the warehouse as of the end of `night` to the published snapshot, atomically."""
    target = path_of(warehouse)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(target.name + ".tmp")
    with writer_lock(warehouse):
        # Everything written so far goes into the file itself, not its write-ahead log:
        # the copy is of the file alone.
        with connect_writer(warehouse, locked=True) as con:
            con.execute("CHECKPOINT")
        shutil.copyfile(warehouse, staging)
    con = duckdb.connect(str(staging))
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("CREATE OR REPLACE TABLE ops.published AS SELECT ?::DATE AS night, now()::TIMESTAMP AS published_at",
                    [night])
    finally:
        con.close()
    os.replace(staging, target)
    return target


def describe(con: duckdb.DuckDBPyConnection) -> str:
    """Which night an open snapshot shows, for the reader's notice."""
    try:
        night, at = con.execute("SELECT night, published_at FROM ops.published").fetchone()
    except duckdb.Error:
        return "an earlier night"
    return f"the night of {night} (published {at:%Y-%m-%d %H:%M} UTC)"
