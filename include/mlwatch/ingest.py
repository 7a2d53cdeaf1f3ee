"""Load landing-zone partitions into the warehouse's raw tables, one partition at a time.

A partition is replaced as a whole inside one transaction, so a rerun replaces and
never duplicates. Every row read ends up in `raw.<feed>` or, with the rules it broke,
in `quarantine.<feed>`; `ops.ingest_files` records the counts per file so that the
conservation rows_read = rows_accepted + rows_quarantined can be checked. A file that
cannot be read at all fails its partition only, with the file, column and rule named.

Which partitions: for a run on day D, the partition dt=D of every feed (always read
again) and any older partition that is new, whose files changed since it was loaded,
or that failed (until it loads). Backfills and nightly runs therefore load the same rows.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Callable

import duckdb

from mlwatch import contracts, validation
from mlwatch.contracts import FileUnreadable
from mlwatch.config import Config
from mlwatch.feeds import FEED_NAMES, Feed, feed_definitions
from mlwatch.landing import LandingFile, Partition, list_partitions
from mlwatch.warehouse import quote

log = logging.getLogger(__name__)

META_COLUMNS = ("_partition_date", "_source_file", "_row_number")
# Accepted labels that cannot join a prediction, counted per labels partition when it loads:
#   unknown_model   the model is not in the configuration
#   no_prediction   no prediction with this id among the model's predictions from
#                   label_delay_days before the label's day on (a prediction delivered
#                   later still joins, and the count is redone when the partition is read again)
ORPHANS_DDL = (
    "CREATE TABLE IF NOT EXISTS ops.label_orphans (feed VARCHAR, partition_date DATE, model_name VARCHAR, "
    "reason VARCHAR, n_labels BIGINT, example_prediction_id VARCHAR)"
)
# What DuckDB raises for a file it cannot read or parse (not for mistakes in our SQL).
_FILE_ERRORS = (duckdb.IOException, duckdb.InvalidInputException, duckdb.ConversionException,
                duckdb.NotImplementedException)


@dataclass
class FileResult:
    file: str
    rows_read: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    error: str | None = None
    # Columns in the file that neither the contract nor the configuration names: not loaded, and said so.
    unknown_columns: list[str] = field(default_factory=list)


@dataclass
class PartitionResult:
    feed: str
    day: dt.date
    status: str                      # loaded | unchanged | failed | empty
    files: list[FileResult] = field(default_factory=list)
    error: str | None = None

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_accepted(self) -> int:
        return sum(f.rows_accepted for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)


def ensure_tables(con: duckdb.DuckDBPyConnection, config: Config) -> dict[str, Feed]:
    feeds = feed_definitions(config)
    for feed in feeds.values():
        columns = ", ".join(f"{quote(c.name)} {c.ddl_type}" for c in feed.columns)
        con.execute(
            f"CREATE TABLE IF NOT EXISTS raw.{feed.name} "
            f"(_partition_date DATE, _source_file VARCHAR, _row_number BIGINT, {columns})"
        )
        # A feature added to the configuration becomes a new column of the raw table.
        for column in feed.columns:
            con.execute(f"ALTER TABLE raw.{feed.name} ADD COLUMN IF NOT EXISTS {quote(column.name)} {column.ddl_type}")
        con.execute(
            f"CREATE TABLE IF NOT EXISTS quarantine.{feed.name} ("
            "_partition_date DATE, _source_file VARCHAR, _row_number BIGINT, _line BIGINT, "
            "rules VARCHAR[], reasons VARCHAR, record VARCHAR, model_name VARCHAR)"
        )
        con.execute(f"ALTER TABLE quarantine.{feed.name} ADD COLUMN IF NOT EXISTS model_name VARCHAR")
    con.execute(
        "CREATE TABLE IF NOT EXISTS ops.ingest_files ("
        "feed VARCHAR, partition_date DATE, file VARCHAR, fingerprint VARCHAR, status VARCHAR, "
        "rows_read BIGINT, rows_accepted BIGINT, rows_quarantined BIGINT, error VARCHAR)"
    )
    con.execute(
        "CREATE TABLE IF NOT EXISTS ops.ingest_partitions ("
        "feed VARCHAR, partition_date DATE, fingerprint VARCHAR, status VARCHAR, error VARCHAR)"
    )
    con.execute(ORPHANS_DDL)
    validation.ensure_tables(con)
    return feeds


def partitions_to_load(con: duckdb.DuckDBPyConnection, config: Config, feed: str,
                       run_date: dt.date, reread_from: dt.date | None = None) -> list[Partition]:
    """Partitions up to run_date that are new, changed or failed last time, plus every one from reread_from on.

    A failed partition is read again whatever its files look like: putting back the files
    of its last good load gives the fingerprint of that load, and must still clear the failure.
    """
    reread_from = reread_from or run_date
    loaded = dict(con.execute(
        "SELECT partition_date, fingerprint FROM ops.ingest_partitions WHERE feed = ? AND status IN ('loaded', 'empty')",
        [feed],
    ).fetchall())
    failed = {day for (day,) in con.execute(
        "SELECT partition_date FROM ops.ingest_partitions WHERE feed = ? AND status = 'failed'", [feed]).fetchall()}
    return [
        p for p in list_partitions(config.landing, feed, until=run_date)
        if p.day >= reread_from or p.day in failed or loaded.get(p.day) != p.fingerprint
    ]


def ingest(con: duckdb.DuckDBPyConnection, config: Config, run_date: dt.date, *,
           reread_from: dt.date | None = None, feeds: tuple[str, ...] = FEED_NAMES,
           progress: Callable[[PartitionResult], None] | None = None,
           announce: Callable[[str], None] | None = None,
           validator: validation.ContractValidator | None = None) -> list[PartitionResult]:
    """Load the partitions of each feed that this run reads.

    All of a feed's partitions are read first, then validated against the contract
    together (Great Expectations has a large cost per run, not per row: one run per batch
    of rows instead of one per partition), then each partition is replaced in its own
    transaction. `progress` hears of each partition once it is replaced; `announce`, of
    each feed's phases as they begin (a backfill's feed takes minutes before its first
    partition is done).
    """
    definitions = ensure_tables(con, config)
    validator = validator or validation.ContractValidator(config)
    say = announce or (lambda text: None)
    results = []
    for name in feeds:
        parts = partitions_to_load(con, config, name, run_date, reread_from)
        if parts:
            say(f"{name}: reading {len(parts)} partition(s)")
            loaded = _load_feed(con, definitions[name], parts, validator, say)
            for result in loaded:
                if progress:
                    progress(result)
            failed = sum(r.status == "failed" for r in loaded)
            say(f"{name}: {sum(r.rows_accepted for r in loaded):,} rows accepted, "
                f"{sum(r.rows_quarantined for r in loaded):,} quarantined over {len(loaded)} partition(s)"
                + (f"; {failed} partition(s) FAILED" if failed else ""))
            results += loaded
    return results


def _load_feed(con: duckdb.DuckDBPyConnection, feed: Feed, parts: list[Partition],
               validator: validation.ContractValidator, say: Callable[[str], None]) -> list[PartitionResult]:
    _create_staged_rows(con, feed)
    try:
        results = [_stage_partition(con, feed, part) for part in parts]
        staged = [r.day for r in results if r.status != "failed"]
        say(f"{feed.name}: checking {sum(r.rows_read for r in results):,} rows against the contract")
        validation.apply_contract(con, validator, feed)
        contracts.mark_duplicates(con, feed, staged)
        for part, result in zip(parts, results):
            if result.status == "failed":
                _record_failure(con, feed, part, result)
            else:
                _replace_partition(con, validator.config, feed, part, result)
        return results
    finally:
        contracts.drop_temporaries(con)
        con.execute("DROP TABLE IF EXISTS staged_rows")
        con.execute("DROP SEQUENCE IF EXISTS staged_row_ids")


def _stage_partition(con: duckdb.DuckDBPyConnection, feed: Feed, part: Partition) -> PartitionResult:
    result = PartitionResult(feed=feed.name, day=part.day, status="loaded" if part.files else "empty")
    try:
        for file in part.files:
            result.files.append(_stage_file(con, feed, part.day, file))
    except FileUnreadable as exc:
        con.execute("DELETE FROM staged_rows WHERE _partition_date = ?", [part.day])
        result.status, result.error, result.files = "failed", str(exc), []
    return result


def _replace_partition(con: duckdb.DuckDBPyConnection, config: Config, feed: Feed, part: Partition,
                       result: PartitionResult) -> None:
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DELETE FROM raw.{feed.name} WHERE _partition_date = ?", [part.day])
        con.execute(f"DELETE FROM quarantine.{feed.name} WHERE _partition_date = ?", [part.day])
        for table in ("ingest_files", "ingest_partitions", "contract_warnings", "label_orphans"):
            con.execute(f"DELETE FROM ops.{table} WHERE feed = ? AND partition_date = ?", [feed.name, part.day])
        _move_rows(con, feed, part.day, result)
        validation.record_warnings(con, feed, part.day)
        _record_unknown_columns(con, feed, part.day, result)
        if feed.name == "labels":
            _record_orphans(con, config, part.day)
        for f in result.files:
            con.execute(
                "INSERT INTO ops.ingest_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                [feed.name, part.day, f.file, _file(part, f.file).fingerprint, result.status,
                 f.rows_read, f.rows_accepted, f.rows_quarantined],
            )
        con.execute("INSERT INTO ops.ingest_partitions VALUES (?, ?, ?, ?, NULL)",
                    [feed.name, part.day, part.fingerprint, result.status])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def _record_unknown_columns(con: duckdb.DuckDBPyConnection, feed: Feed, day: dt.date,
                            result: PartitionResult) -> None:
    model = "model_name" if feed.has_model else "NULL"
    for f in result.files:
        for column in f.unknown_columns:
            said = (f"{f.file}: column {column} is not in the contract"
                    + (" nor a configured feature, segment or weight column" if feed.name == "predictions" else "")
                    + "; its values are not loaded (kept only in quarantined rows' records)")
            con.execute(
                f"INSERT INTO ops.contract_warnings SELECT ?, ?, {model}, ?, count(*), ? FROM staged_rows "
                "WHERE _partition_date = ? AND _source_file = ? GROUP BY ALL ORDER BY ALL",
                [feed.name, day, f"unknown_column:{column}", said, day, f.file])


def _record_orphans(con: duckdb.DuckDBPyConnection, config: Config, day: dt.date) -> None:
    horizon = day - dt.timedelta(days=config.max_label_delay_days)
    con.execute(
        "INSERT INTO ops.label_orphans "
        "SELECT 'labels', ?, l.model_name, CASE WHEN list_contains(?, l.model_name) THEN 'no_prediction' "
        "ELSE 'unknown_model' END AS reason, count(*), min(l.prediction_id) "
        "FROM raw.labels AS l WHERE l._partition_date = ? AND (NOT list_contains(?, l.model_name) OR NOT EXISTS ("
        "  SELECT 1 FROM raw.predictions AS p WHERE p._partition_date >= ? AND p.model_name = l.model_name "
        "  AND p.prediction_id = l.prediction_id)) "
        "GROUP BY ALL ORDER BY ALL",
        [day, list(config.models), day, list(config.models), horizon])


def _file(part: Partition, name: str) -> LandingFile:
    return next(f for f in part.files if f.key == name)


def _record_failure(con: duckdb.DuckDBPyConnection, feed: Feed, part: Partition, result: PartitionResult) -> None:
    """Keep what an earlier, good load of the partition left; record the failure beside it."""
    log.error("%s partition dt=%s not loaded: %s", feed.name, part.day, result.error)
    con.execute("DELETE FROM ops.ingest_partitions WHERE feed = ? AND partition_date = ? AND status = 'failed'",
                [feed.name, part.day])
    con.execute("INSERT INTO ops.ingest_partitions VALUES (?, ?, ?, 'failed', ?)",
                [feed.name, part.day, part.fingerprint, result.error])


def _create_staged_rows(con: duckdb.DuckDBPyConnection, feed: Feed) -> None:
    columns = ", ".join(f"{quote(c.name)} {c.ddl_type}" for c in feed.columns)
    # _row_id numbers the staged rows for the validation batches.
    con.execute("CREATE OR REPLACE TEMP SEQUENCE staged_row_ids START 0 MINVALUE 0")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE staged_rows (_row_id BIGINT DEFAULT nextval('staged_row_ids'), "
        "_partition_date DATE, _source_file VARCHAR, "
        f"_row_number BIGINT, _line BIGINT, {columns}, _rules VARCHAR[], _reasons VARCHAR[], _record VARCHAR)"
    )


def _stage_file(con: duckdb.DuckDBPyConnection, feed: Feed, day: dt.date, file: LandingFile) -> FileResult:
    """Read one file into staged_rows with its typed columns and the rules each row broke while read."""
    result = FileResult(file=file.key)
    if file.format is None:
        raise FileUnreadable(
            f"{file.path}: unsupported file type (rule: format); use .parquet, .csv or .jsonl, optionally .gz"
        )
    if file.size == 0:
        raise FileUnreadable(f"{file.path}: empty file (rule: non_empty); remove it or land the data again")
    try:
        source = contracts.read_source(con, file)
        present = contracts.source_columns(con, source)
        contracts.check_header(feed, file, present)
        known = {c.name for c in feed.columns}
        result.unknown_columns = [name for key, name in present.items() if key not in known]
        before = con.execute("SELECT count(*) FROM staged_rows").fetchone()[0]
        con.execute(contracts.typed_insert_sql(feed, day, file, source, present))
        malformed = contracts.insert_malformed_lines(con, day, file, source)
    except _FILE_ERRORS as exc:
        raise FileUnreadable(f"{file.path}: cannot be read (rule: readable): {_first_line(exc)}") from None
    after = con.execute("SELECT count(*) FROM staged_rows").fetchone()[0]
    result.rows_read = after - before
    if result.rows_read == 0 and malformed == 0:
        raise FileUnreadable(f"{file.path}: no rows (rule: non_empty); land the data again or remove the file")
    contracts.check_whole_columns(con, feed, file)
    return result


def _move_rows(con: duckdb.DuckDBPyConnection, feed: Feed, day: dt.date, result: PartitionResult) -> None:
    names = ", ".join(quote(n) for n in (*META_COLUMNS, *(c.name for c in feed.columns)))
    con.execute(f"INSERT INTO raw.{feed.name} ({names}) SELECT {names} FROM staged_rows "
                "WHERE _partition_date = ? AND len(_rules) = 0", [day])
    # The model a bad row belongs to, where it can be told, so data loss counts per model.
    model = "model_name" if feed.has_model else "NULL"
    con.execute(
        f"INSERT INTO quarantine.{feed.name} "
        "SELECT _partition_date, _source_file, _row_number, _line, _rules, array_to_string(_reasons, '; '), _record, "
        f"{model} FROM staged_rows WHERE _partition_date = ? AND len(_rules) > 0", [day]
    )
    counts = dict(
        ((file, accepted), n) for file, accepted, n in con.execute(
            "SELECT _source_file, len(_rules) = 0, count(*) FROM staged_rows WHERE _partition_date = ? GROUP BY ALL",
            [day]).fetchall()
    )
    for f in result.files:
        f.rows_accepted = counts.get((f.file, True), 0)
        f.rows_quarantined = counts.get((f.file, False), 0)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def summarize(results: list[PartitionResult]) -> dict[str, dict[str, int]]:
    summary: dict[str, dict[str, int]] = {}
    for r in results:
        s = summary.setdefault(r.feed, {"partitions": 0, "failed": 0, "rows_read": 0,
                                        "rows_accepted": 0, "rows_quarantined": 0})
        s["partitions"] += 1
        s["failed"] += r.status == "failed"
        s["rows_read"] += r.rows_read
        s["rows_accepted"] += r.rows_accepted
        s["rows_quarantined"] += r.rows_quarantined
    return summary
