"""Connections to the DuckDB warehouse: one writer at a time, readers read-only.

DuckDB allows one read-write process per file, and while it is open other processes
cannot open it at all. Writers therefore take an advisory file lock first and wait
for it, so the CLI, the nightly DAG and a backfill queue up instead of failing;
readers open read-only and, if a writer holds the file, say so plainly.

Every reader is also sandboxed: its queries may come from a user (`mlwatch sql`, the
Airflow plugin), so it can read the warehouse it opened and nothing else.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path
from typing import Iterator

import duckdb

from mlwatch.errors import WarehouseBusyError

log = logging.getLogger(__name__)

# Schemas that Python owns; dbt owns staging, intermediate, marts and config.
PYTHON_SCHEMAS = ("raw", "quarantine", "ops", "governance")
WRITER_WAIT_SECONDS = float(os.environ.get("MLWATCH_WRITER_WAIT_SECONDS", 3600))


def _configure(con: duckdb.DuckDBPyConnection) -> None:
    # Naive timestamps are UTC (contract §1), whatever the machine's zone is.
    con.execute("SET TimeZone = 'UTC'")


@contextlib.contextmanager
def writer_lock(path: Path, wait_seconds: float = WRITER_WAIT_SECONDS) -> Iterator[None]:
    """Hold the warehouse's writer lock; wait (and say so) while someone else has it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a+") as handle:
        deadline = time.monotonic() + wait_seconds
        announced = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not announced:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    log.warning("warehouse %s is being written by %s; waiting", path, holder)
                    announced = True
                if time.monotonic() > deadline:
                    raise WarehouseBusyError(
                        f"gave up after {wait_seconds:.0f}s waiting for the writer of {path}; "
                        "check for a stuck mlwatch run or DAG task and stop it"
                    ) from None
                time.sleep(0.5)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def connect_writer(path: Path, *, locked: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection. Pass locked=True when the caller already holds writer_lock."""
    with contextlib.ExitStack() as stack:
        if not locked:
            stack.enter_context(writer_lock(path))
        con = duckdb.connect(str(path))
        stack.callback(con.close)
        _configure(con)
        for schema in PYTHON_SCHEMAS:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        yield con


# A reader's connection sees the warehouse file and nothing else: no other file (so no
# /proc/self/environ and its Slack token), no network, no extension installed or loaded at
# query time (an http path would otherwise make DuckDB download httpfs), and settings that
# a query cannot change back.
READER_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
}


@contextlib.contextmanager
def connect_reader(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    path = Path(path)
    if not path.exists():
        raise WarehouseBusyError(
            f"warehouse {path} does not exist yet; run `mlwatch run --date D` or `mlwatch demo` first"
        )
    try:
        con = duckdb.connect(str(path), read_only=True, config=READER_CONFIG)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        con = _published_instead(path)
    try:
        _configure(con)
        # Locked last: TimeZone (an ICU setting) cannot be passed to connect().
        con.execute("SET lock_configuration = true")
        yield con
    finally:
        con.close()


def _published_instead(path: Path) -> duckdb.DuckDBPyConnection:
    """A run holds the warehouse: the snapshot its last night published (mlwatch.snapshot)."""
    from mlwatch import snapshot

    published = snapshot.path_of(path)
    if not published.exists():
        raise WarehouseBusyError(
            f"warehouse {path} is being written by a running mlwatch job, and no night has published a "
            "snapshot to read meanwhile (each night does when it ends); try again when the run finishes"
        )
    con = duckdb.connect(str(published), read_only=True, config=READER_CONFIG)
    log.warning("warehouse %s is being written by a running mlwatch job; reading the snapshot of %s",
                path, snapshot.describe(con))
    return con


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchone()[0])


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + str(text).replace("'", "''") + "'"
