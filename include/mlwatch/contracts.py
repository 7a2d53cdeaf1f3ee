"""Row-level rules of the data contract, applied in DuckDB while a file is loaded.

Each file is read as text (CSV, JSON Lines) or as typed columns (Parquet), cast to
the contract's types, and every row gets the list of rules it broke while being read:

  type:<col>        the value does not parse as the column's type
  finite:<col>      NaN or infinity in a number
  partition:<col>   the row's UTC date is not the date of the partition it landed in
  duplicate:<key>   the row's key was already delivered (same file, another file, or
                    another partition); the first delivery wins
  nul_byte:<col>    a text value holds a NUL byte (0x00), which no producer means to send
  malformed:csv / malformed:json   the line could not be parsed at all

The rows that were read are then checked against the data contract with Great
Expectations (validation.py: required values, ranges, label sets, ...), and last the
duplicates are marked among the rows still standing. Rows with no broken rule are
accepted; the others are quarantined with the reasons and the original record. A file
whose rows all break the same column rule is treated as a wrong file (wrong column type
throughout) rather than as a pile of bad rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from mlwatch.feeds import Column, Feed
from mlwatch.landing import LandingFile
from mlwatch.validation import shorten_sql
from mlwatch.warehouse import literal, quote


class FileUnreadable(Exception):
    """The file as a whole cannot be used; the message names the file, column and rule."""


# A valid JSON text that starts with '{' is an object; json_type() would fail on invalid lines.
_JSON_OBJECT = "json_valid(line) AND starts_with(ltrim(line), '{')"


@dataclass(frozen=True)
class Source:
    """A file opened as the relation `landing_source` with _row_number and _line columns."""
    format: str
    json_lines: bool


def check_encoding(file: LandingFile, sample_bytes: int = 1 << 16) -> None:
    """Text feeds must be UTF-8; a UTF-16 or Latin-1 file is refused as a whole, with the reason."""
    import gzip

    opener = gzip.open if file.compressed else open
    try:
        with opener(file.path, "rb") as handle:
            sample = handle.read(sample_bytes)
    except (OSError, EOFError) as exc:
        raise FileUnreadable(f"{file.path}: cannot be read (rule: readable): {exc}") from None
    # UTF-16 puts a NUL beside every ASCII character; a stray NUL in UTF-8 text is a bad
    # value of one row (rule nul_byte), not a bad file.
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")) or sample.count(b"\x00") > len(sample) // 4:
        raise FileUnreadable(f"{file.path}: not UTF-8 text, looks like UTF-16 (rule: encoding utf-8); "
                             "re-export the file as UTF-8")
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 4:  # not just a character cut at the sample's end
            raise FileUnreadable(
                f"{file.path}: not UTF-8 text, byte 0x{sample[exc.start]:02x} at offset {exc.start} "
                "(rule: encoding utf-8); re-export the file as UTF-8") from None


def read_source(con: duckdb.DuckDBPyConnection, file: LandingFile) -> Source:
    if file.format in ("csv", "jsonl"):
        check_encoding(file)
    path = literal(str(file.path))
    compression = "'gzip'" if file.compressed else "'none'"
    drop_temporaries(con)
    if file.format == "parquet":
        con.execute(
            "CREATE TEMP TABLE landing_source AS SELECT file_row_number + 1 AS _row_number, "
            f"NULL::BIGINT AS _line, * EXCLUDE (file_row_number) "
            f"FROM read_parquet({path}, file_row_number = true, hive_partitioning = false)"
        )
        return Source("parquet", json_lines=False)
    if file.format == "csv":
        # Malformed lines (wrong number of fields, bad quoting, bad UTF-8) go to the
        # rejects table instead of failing the file; they are quarantined as such.
        con.execute(
            "CREATE TEMP TABLE landing_source AS SELECT row_number() OVER () AS _row_number, "
            "NULL::BIGINT AS _line, * "
            f"FROM read_csv({path}, header = true, delim = ',', quote = '\"', all_varchar = true, hive_partitioning = false, "
            f"compression = {compression}, store_rejects = true, rejects_table = 'csv_rejects', "
            "rejects_scan = 'csv_scans')"
        )
        return Source("csv", json_lines=False)
    # JSON Lines: read line by line so one broken line does not hide the others.
    con.execute(
        "CREATE TEMP TABLE landing_lines AS SELECT row_number() OVER () AS _line, line "
        f"FROM read_csv({path}, columns = {{'line': 'VARCHAR'}}, header = false, delim = E'\\x1e', "
        f"quote = '', escape = '', auto_detect = false, hive_partitioning = false, compression = {compression})"
    )
    con.execute(
        "CREATE TEMP TABLE landing_source AS SELECT _line AS _row_number, _line, line FROM landing_lines "
        f"WHERE line IS NOT NULL AND {_JSON_OBJECT}"
    )
    return Source("jsonl", json_lines=True)


def drop_temporaries(con: duckdb.DuckDBPyConnection) -> None:
    for table in ("landing_source", "landing_lines", "csv_rejects", "csv_scans", "staged_warnings"):
        con.execute(f"DROP TABLE IF EXISTS {table}")


def source_columns(con: duckdb.DuckDBPyConnection, source: Source) -> dict[str, str]:
    """Columns present in the file: lower-case name -> name as written."""
    if source.json_lines:
        names = [r[0] for r in con.execute(
            "SELECT DISTINCT unnest(json_keys(line)) FROM landing_source").fetchall()]
    else:
        names = [r[0] for r in con.execute("DESCRIBE landing_source").fetchall()
                 if r[0] not in ("_row_number", "_line")]
    return {name.lower(): name for name in sorted(names)}


def check_header(feed: Feed, file: LandingFile, present: dict[str, str]) -> None:
    missing = [c.name for c in feed.columns if c.required and c.name not in present]
    if missing:
        has = ", ".join(sorted(present.values())) or "none"
        raise FileUnreadable(
            f"{file.path}: column {missing[0]} is missing (rule: required column"
            + (f"; also missing: {', '.join(missing[1:])}" if missing[1:] else "")
            + f"); the file has columns: {has}"
        )


def _raw_expr(source: Source, column: Column, present: dict[str, str]) -> str:
    name = present.get(column.name)
    if name is None:
        return "NULL"
    if source.json_lines:
        return f"json_extract_string(src.line, {literal('$.' + _json_key(name))})"
    return f"src.{quote(name)}"


def _json_key(name: str) -> str:
    return '"' + name.replace('"', '\\"') + '"'


def _typed_expr(column: Column, raw: str) -> str:
    if column.type == "VARCHAR":
        return f"CAST({raw} AS VARCHAR)"
    if column.type == "JSON":
        # JSON text as delivered, or a Parquet struct/map turned into JSON; objects only.
        text = f"CAST({raw} AS VARCHAR)"
        converted = f"CAST(to_json({raw}) AS VARCHAR)"
        return (f"CASE WHEN {raw} IS NULL THEN NULL "
                f"WHEN json_valid({text}) AND starts_with(ltrim({text}), '{{') THEN {text} "
                f"WHEN starts_with({converted}, '{{') THEN {converted} END")
    if column.is_timestamp:
        # Naive timestamps are read as UTC (the connection's zone); stored naive UTC.
        return f"CAST(timezone('UTC', TRY_CAST({raw} AS TIMESTAMPTZ)) AS TIMESTAMP)"
    return f"TRY_CAST({raw} AS {column.type})"


def _position(source: Source) -> str:
    """Where a row is in its file, as SQL text: JSON Lines count lines; a CSV's rows are counted
    after its header and without its malformed lines, so they are data rows, not lines."""
    if source.json_lines:
        return "'line ' || _line"
    return "'data row ' || _row_number" if source.format == "csv" else "'row ' || _row_number"


def _rules(feed: Feed, column: Column, raw: str, typed: str, day: dt.date, position: str) -> list[tuple[str, str]]:
    """(rule, reason) SQL expression pairs that are NULL when the row passes."""
    name = column.name
    text = f"CAST({raw} AS VARCHAR)"
    shown = shorten_sql(text, chars=60)
    rules = [(
        f"CASE WHEN {raw} IS NOT NULL AND {typed} IS NULL THEN 'type:{name}' END",
        f"'{name}: ' || {shown} || ' is not a {'JSON object' if column.type == 'JSON' else column.type.lower()}'",
    )]
    if column.type in ("VARCHAR", "JSON"):
        rules.append((f"CASE WHEN contains({text}, chr(0)) THEN 'nul_byte:{name}' END",
                      f"'{name}: a NUL byte (0x00) at character ' || strpos({text}, chr(0)) || ' of the value, "
                      f"' || {position}"))
    if column.type == "DOUBLE":
        rules.append((f"CASE WHEN isnan({typed}) OR isinf({typed}) THEN 'finite:{name}' END",
                      f"'{name}: ' || {shown} || ' is not a finite number'"))
    if feed.partition_column == name:
        rules.append((
            f"CASE WHEN CAST({typed} AS DATE) <> DATE '{day}' THEN 'partition:{name}' END",
            f"'{name}: UTC date ' || CAST(CAST({typed} AS DATE) AS VARCHAR) || ' is not the partition date {day}'",
        ))
    return rules


def typed_insert_sql(feed: Feed, day: dt.date, file: LandingFile, source: Source,
                     present: dict[str, str]) -> str:
    inner, outer, rule_exprs, reason_exprs = [], [], [], []
    for i, column in enumerate(feed.columns):
        raw = _raw_expr(source, column, present)
        inner += [f"{raw} AS r{i}", f"{_typed_expr(column, raw)} AS t{i}"]
        outer.append(f"t{i}")
        for rule, reason in _rules(feed, column, f"r{i}", f"t{i}", day, _position(source)):
            rule_exprs.append(rule)
            reason_exprs.append(f"CASE WHEN {rule} IS NOT NULL THEN {reason} END")
    if source.json_lines:
        record = "src.line"
    else:
        record = "to_json(struct_pack(" + ", ".join(
            f"{quote(name)} := src.{quote(name)}" for name in present.values()) + "))"
    rules = f"list_filter([{', '.join(rule_exprs)}], lambda x: x IS NOT NULL)"
    reasons = f"list_filter([{', '.join(reason_exprs)}], lambda x: x IS NOT NULL)"
    names = ", ".join(quote(c.name) for c in feed.columns)
    return (
        "INSERT INTO staged_rows (_partition_date, _source_file, _row_number, _line, "
        f"{names}, _rules, _reasons, _record) "
        f"SELECT DATE '{day}', {literal(file.key)}, _row_number, _line, {', '.join(outer)}, "
        # The original record is kept for every row: duplicates are found only later.
        f"_rules, _reasons, _record "
        f"FROM (SELECT *, {rules} AS _rules, {reasons} AS _reasons FROM ("
        f"SELECT _row_number, _line, {record} AS _record, {', '.join(inner)} FROM landing_source AS src))"
    )


def insert_malformed_lines(con: duckdb.DuckDBPyConnection, day: dt.date, file: LandingFile,
                           source: Source) -> int:
    file_name = literal(file.key)
    if source.format == "csv":
        sql = (
            "INSERT INTO staged_rows (_partition_date, _source_file, _row_number, _line, _rules, _reasons, _record) "
            # DuckDB reports a short line once per missing column: keep the first report.
            f"SELECT DATE '{day}', {file_name}, NULL, line, ['malformed:csv'], "
            "['line ' || line || ': ' || arg_min(error_message, coalesce(column_idx, 0))], any_value(csv_line) "
            "FROM csv_rejects GROUP BY line"
        )
    elif source.json_lines:
        sql = (
            "INSERT INTO staged_rows (_partition_date, _source_file, _row_number, _line, _rules, _reasons, _record) "
            f"SELECT DATE '{day}', {file_name}, NULL, _line, ['malformed:json'], "
            "['line ' || _line || ': not a JSON object'], line FROM landing_lines "
            f"WHERE line IS NOT NULL AND NOT ({_JSON_OBJECT})"
        )
    else:
        return 0
    before = con.execute("SELECT count(*) FROM staged_rows").fetchone()[0]
    con.execute(sql)
    return con.execute("SELECT count(*) FROM staged_rows").fetchone()[0] - before


def check_whole_columns(con: duckdb.DuckDBPyConnection, feed: Feed, file: LandingFile) -> None:
    """A column whose every value breaks its type is a wrong file, not many bad rows."""
    rows = con.execute(
        "SELECT count(*) FROM staged_rows WHERE _source_file = ? AND _row_number IS NOT NULL",
        [file.key],
    ).fetchone()[0]
    if rows == 0:
        return
    worst = con.execute(
        "SELECT rule, count(*) AS n, any_value(_reasons) FROM (SELECT unnest(_rules) AS rule, _reasons "
        "FROM staged_rows WHERE _source_file = ? AND _row_number IS NOT NULL) "
        "WHERE rule LIKE 'type:%' GROUP BY rule ORDER BY n DESC, rule LIMIT 1",
        [file.key],
    ).fetchone()
    if worst and worst[1] == rows:
        column = worst[0].split(":", 1)[1]
        example = next((r for r in worst[2] if r.startswith(f"{column}:")), "")
        expected = feed.column(column).type.lower()
        raise FileUnreadable(
            f"{file.path}: column {column} has the wrong type throughout (rule: type {expected}); "
            f"e.g. {example}"
        )


def mark_duplicates(con: duckdb.DuckDBPyConnection, feed: Feed, days: list[dt.date]) -> None:
    """Mark rows whose key was delivered before: earlier in the staged partitions (by partition,
    file and row), or in a partition already loaded. The first delivery wins."""
    key_text = "/".join(feed.key)
    # A prediction's id is unique per model across partitions; other feeds' keys hold per partition.
    scope = ", ".join(quote(k) for k in feed.key) + ("" if feed.name == "predictions" else ", _partition_date")
    order = "_partition_date, _source_file, _row_number"
    con.execute(
        "UPDATE staged_rows AS p SET "
        f"_rules = list_append(p._rules, 'duplicate:{key_text}'), "
        f"_reasons = list_append(p._reasons, '{key_text}: duplicate of row ' || d.first_row || ' in ' || d.first_file) "
        "FROM (SELECT _row_id, "
        f"row_number() OVER (PARTITION BY {scope} ORDER BY {order}) AS k, "
        f"first_value(_row_number) OVER (PARTITION BY {scope} ORDER BY {order}) AS first_row, "
        f"first_value(_source_file) OVER (PARTITION BY {scope} ORDER BY {order}) AS first_file "
        f"FROM staged_rows WHERE len(_rules) = 0 AND {' AND '.join(f'{quote(k)} IS NOT NULL' for k in feed.key)}) AS d "
        "WHERE d.k > 1 AND p._row_id = d._row_id"
    )
    if feed.name == "predictions":
        # Only the staged ids are looked up in the loaded history (a semi join built on the
        # night's rows): grouping every id ever loaded would grow the night's memory with
        # history.
        con.execute(
            "UPDATE staged_rows AS p SET "
            "_rules = list_append(p._rules, 'duplicate:model_name/prediction_id'), "
            "_reasons = list_append(p._reasons, 'prediction_id: already delivered in partition dt=' "
            "|| CAST(r._partition_date AS VARCHAR)) "
            "FROM (SELECT loaded.model_name, loaded.prediction_id, min(loaded._partition_date) AS _partition_date "
            "FROM raw.predictions AS loaded "
            "SEMI JOIN (SELECT DISTINCT model_name, prediction_id FROM staged_rows) AS staged "
            "ON staged.model_name = loaded.model_name AND staged.prediction_id = loaded.prediction_id "
            "WHERE NOT list_contains(?, loaded._partition_date) GROUP BY ALL) AS r "
            "WHERE len(p._rules) = 0 AND p.model_name = r.model_name AND p.prediction_id = r.prediction_id",
            [days],
        )
