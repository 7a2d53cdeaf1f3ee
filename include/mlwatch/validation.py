"""The data contract as Great Expectations suites, run as SQL in DuckDB.

Suites are generated from the configuration, one per feed and model (stages: one per
feed): each Check is one Great Expectations expectation. Nightly, each expectation runs
as its SQL translation over the rows a partition staged in DuckDB (staged_rows, see
ingest.py): Great Expectations' pandas execution costs about 17 s per million rows, and
its SQL data source fails on every expectation against DuckDB in 1.24
(../shared/STACK.md). cross_check() runs the suites with Great Expectations itself, in
batches of `contracts.batch_rows` as DataFrames, and lists any row on which the two
disagree; the tests run it on every kind of bad value.

Expectations of severity critical quarantine the rows that fail them, with the rule and
the reason. Warnings (feature values outside the contract's range or list) keep the row:
the model did decide on it, and marts.feature_coverage counts the value as invalid;
they are recorded in ops.contract_warnings.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import sys
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterator

import duckdb
import pandas as pd

from mlwatch.config import Config, ModelConfig
from mlwatch.feeds import Feed
from mlwatch.warehouse import literal

log = logging.getLogger(__name__)

def _import_great_expectations():
    """Import Great Expectations without letting it import pyspark.

    GE imports pyspark at import time when it is installed (requirements.txt has it for
    the Spark parity test): seconds per validating process, and in a `python -c`
    interpreter pyspark.sql.connect ends the process with exit status 0 (it takes it for
    a doctest run). mlwatch validates pandas DataFrames only, so pyspark is hidden while
    GE is first imported; GE then records it as not installed. A process that has already
    imported pyspark or GE is left as it is.
    """
    if "great_expectations" not in sys.modules and "pyspark" not in sys.modules:
        sys.modules["pyspark"] = None  # type: ignore[assignment]  # import pyspark -> ImportError
        try:
            import great_expectations  # noqa: F401
        finally:
            if "pyspark" in sys.modules and sys.modules["pyspark"] is None:
                del sys.modules["pyspark"]
    import great_expectations

    return great_expectations


# Rows of a model the configuration does not name get the feed's generic checks.
ANY_MODEL = "*"
NUMBER = r"^\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*$"


@dataclass(frozen=True)
class Check:
    """One expectation, with what mlwatch needs to explain a failure in words."""
    kind: str                      # not_null | between | in_set | not_in_set | number
    column: str
    critical: bool = True
    low: float | None = None
    high: float | None = None
    values: tuple[str, ...] = ()
    unless: Any = None             # a sentinel that is exempt (a feature's default)
    explain: str | None = None     # what the column means, when it is derived

    def expectation(self):
        _import_great_expectations()
        from great_expectations import expectations as E
        from great_expectations.expectations.metadata_types import FailureSeverity

        severity = FailureSeverity.CRITICAL if self.critical else FailureSeverity.WARNING
        extra: dict[str, Any] = {"severity": severity}
        if self.unless is not None:
            extra.update(row_condition=f"{self.column} != {self.unless!r}", condition_parser="pandas")
        if self.kind == "not_null":
            return E.ExpectColumnValuesToNotBeNull(column=self.column, **extra)
        if self.kind == "number":
            return E.ExpectColumnValuesToMatchRegex(column=self.column, regex=NUMBER, **extra)
        if self.kind == "between":
            return E.ExpectColumnValuesToBeBetween(column=self.column, min_value=self.low, max_value=self.high, **extra)
        if self.kind == "not_in_set":
            return E.ExpectColumnValuesToNotBeInSet(column=self.column, value_set=list(self.values), **extra)
        return E.ExpectColumnValuesToBeInSet(column=self.column, value_set=list(self.values), **extra)

    @property
    def rule(self) -> str:
        return {"not_null": "required", "between": "range", "in_set": "in_set", "not_in_set": "reserved",
                "number": "number"}[self.kind] \
            + f":{self.column}"

    def reason(self, value: Any) -> str:
        shown = "missing" if _missing(value) else shorten(repr(_plain(value)))
        subject = f"{self.column}{f' ({self.explain})' if self.explain else ''}"
        if self.kind == "not_null":
            return f"{subject}: required value missing"
        if self.kind == "number":
            return f"{subject}: {shown} is not a number"
        if self.kind == "between":
            if self.low is not None and self.high is not None:
                return f"{subject}: {shown} is outside [{self.low:g}, {self.high:g}]"
            if self.low is not None:
                return f"{subject}: {shown} is below {self.low:g}"
            return f"{subject}: {shown} is above {self.high:g}"
        if self.kind == "not_in_set":
            return f"{subject}: {shown} is a name mlwatch reserves ({RESERVED[self.column][1]})"
        listed = ", ".join(self.values[:8]) + (", ..." if len(self.values) > 8 else "")
        return f"{subject}: {shown} is not one of {listed}"


    def failure_sql(self, text: bool) -> str:
        """A SQL condition, true on the rows Great Expectations finds unexpected for this expectation.

        The same semantics as GE's pandas execution: a missing value is unexpected only
        to not_null; a row carrying the exempt value (`unless`) is not judged at all.
        `text` says whether the column holds strings.
        """
        column = f'"{self.column}"'
        if self.kind == "not_null":
            return f"{column} IS NULL"
        exempt = f" AND {column} IS DISTINCT FROM {_sql_value(self.unless)}" if self.unless is not None else ""
        present = f"{column} IS NOT NULL{exempt}"
        if self.kind == "number":
            return f"{present} AND NOT regexp_matches({column}, {_sql_value(NUMBER)})"
        if self.kind == "between":
            bounds = [f"{column} < {self.low!r}" if self.low is not None else None,
                      f"{column} > {self.high!r}" if self.high is not None else None]
            return f"{present} AND ({' OR '.join(b for b in bounds if b)})"
        listed = ", ".join(_sql_value(v) for v in self.values)
        compared = column if text else f"CAST({column} AS VARCHAR)"
        negation = "" if self.kind == "not_in_set" else "NOT "
        return f"{present} AND {negation}{compared} IN ({listed})"

    def reason_sql(self, text: bool) -> str:
        """reason() as a SQL expression over the row, for the rows failure_sql() selects."""
        if self.kind == "not_null":
            return _sql_value(self.reason(None))
        column = f'"{self.column}"'
        quoted = f"chr(39) || {column} || chr(39)"      # repr() of a string: in single quotes
        shown = shorten_sql(quoted if text else f"CAST({column} AS VARCHAR)")
        head, tail = self.reason(_Placeholder()).split(_Placeholder.MARK)
        return f"{_sql_value(head)} || {shown} || {_sql_value(tail)}"


class _Placeholder:
    """Stands for the value in reason(), so that the SQL reason keeps the Python one's words."""
    MARK = "\x00value\x00"

    def __repr__(self) -> str:
        return self.MARK


def _sql_value(value: Any) -> str:
    return literal(value) if isinstance(value, str) else repr(value)


# Per prediction column, a value the marts give a meaning of their own, and that meaning:
# a row carrying it would be indistinguishable from the marts' rows. One table for the
# checks and their reasons.
RESERVED = {"model_version": ("__all__", "marts.performance's row for all versions together")}


# A value quoted in a reason or an example is cut to this many characters: a 1 MB value
# stays in the quarantined row's record, not in every message about it.
SHOWN_CHARS = 80


def shorten(text: str) -> str:
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[:SHOWN_CHARS]}… ({len(text):,} characters)"


def shorten_sql(text: str, chars: int = SHOWN_CHARS) -> str:
    """shorten() as SQL over a text expression."""
    return (f"CASE WHEN length({text}) > {chars} THEN left({text}, {chars}) || '… (' || "
            f"format('{{:,}}', length({text})) || ' characters)' ELSE {text} END")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _model_checks(feed: str, config: Config, model: ModelConfig | None) -> list[Check]:
    skew, slowest = config.contracts.clock_skew_s, config.contracts.max_decision_s
    checks: list[Check] = []
    if feed == "predictions":
        checks += [Check("not_null", c) for c in ("prediction_id", "model_name", "model_version", "event_at",
                                                    "predicted_at", "score")]
        checks += [Check("not_in_set", column, values=(value,)) for column, (value, _) in RESERVED.items()]
        checks.append(Check("between", "time_to_decision_s", low=-skew, high=slowest,
                            explain="predicted_at - event_at, seconds"))
        checks += [Check("between", "latency_ms", low=0), Check("between", "cost_usd", low=0)]
        if model is None:
            return checks
        if model.task != "regression":
            checks.append(Check("between", "score", low=0, high=1))
        if model.task == "multiclass_classification":
            checks.append(Check("not_null", "predicted_label"))
        for name, spec in model.features.items():
            if spec.type == "numeric" and (spec.min is not None or spec.max is not None):
                checks.append(Check("between", name, critical=False, low=spec.min, high=spec.max, unless=spec.default))
            elif spec.type == "categorical" and spec.values is not None:
                checks.append(Check("in_set", name, critical=False, values=tuple(spec.values), unless=spec.default))
    elif feed == "labels":
        checks += [Check("not_null", c) for c in ("prediction_id", "model_name", "label", "labeled_at")]
        checks.append(Check("between", "weight", low=0))
        if model is None:
            return checks
        if model.task == "regression":
            checks.append(Check("number", "label"))
        elif model.allowed_labels is not None:
            checks.append(Check("in_set", "label", values=tuple(model.allowed_labels)))
    elif feed == "costs":
        checks += [Check("not_null", c) for c in ("model_name", "component", "cost_usd")]
        checks.append(Check("between", "cost_usd", low=0))
    elif feed == "stages":
        checks += [Check("not_null", c) for c in ("stage", "window_start", "window_seconds", "records_out",
                                                    "busy_seconds", "workers")]
        if config.pipeline:
            checks.append(Check("in_set", "stage", values=tuple(config.pipeline)))
        checks += [
            Check("between", "window_seconds", low=1),
            Check("between", "workers", low=1),
            Check("between", "records_out", low=0),
            Check("between", "queue_depth", low=0),
            # 5% slack for timers that overlap the interval's edges.
            Check("between", "utilization", low=0, high=1.05, explain="busy_seconds / (window_seconds x workers)"),
        ]
    return checks


# Columns computed in DuckDB for a batch, so the expectations stay simple.
DERIVED = {
    "predictions": "date_diff('millisecond', event_at, predicted_at) / 1000.0 AS time_to_decision_s",
    "stages": "busy_seconds / nullif(window_seconds * workers, 0) AS utilization",
}


class ContractValidator:
    """Great Expectations, set up once per process; suites built per feed and model on demand."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._definitions: dict[tuple[str, str], tuple[Any, dict[str, Check]]] = {}
        # What validation cost this run, for mlwatch's own line of the constraint ledger.
        self.rows_validated = 0
        self.seconds = 0.0

    @cached_property
    def _context(self):
        gx = _import_great_expectations()
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        return context

    @cached_property
    def _batch_definition(self):
        source = self._context.data_sources.add_pandas("mlwatch_landing")
        return source.add_dataframe_asset("staged_rows").add_batch_definition_whole_dataframe("batch")

    def checks(self, feed: str, model_name: str) -> list[Check]:
        model = self.config.models.get(model_name)
        return _model_checks(feed, self.config, model)

    def _definition(self, feed: str, model_name: str):
        gx = _import_great_expectations()

        key = (feed, model_name)
        if key not in self._definitions:
            checks = self.checks(feed, model_name)
            suite = self._context.suites.add(gx.ExpectationSuite(name=f"{feed}.{model_name}"))
            # Results do not come back in suite order: match them to checks by expectation id.
            by_id = {suite.add_expectation(check.expectation()).id: check for check in checks}
            definition = self._context.validation_definitions.add(
                gx.ValidationDefinition(data=self._batch_definition, suite=suite, name=f"{feed}.{model_name}"))
            self._definitions[key] = (definition, by_id)
        return self._definitions[key]

    def validate(self, feed: str, model_name: str, frame: pd.DataFrame) -> tuple[list[tuple], list[tuple]]:
        """(row id, rule, reason) of the critical failures, and of the warnings."""
        definition, by_id = self._definition(feed, model_name)
        result = definition.run(
            batch_parameters={"dataframe": frame},
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["_row_id"],
                           "partial_unexpected_count": 0},
        )
        failures, warnings = [], []
        for outcome in result.results:
            check = by_id[outcome.expectation_config.id]
            if outcome.success:
                continue
            if outcome.exception_info and outcome.exception_info.get("raised_exception"):
                raise RuntimeError(f"expectation {check.rule} could not run: "
                                   f"{outcome.exception_info.get('exception_message')}")
            unexpected = outcome.result.get("unexpected_index_list") or []
            found = [(int(u["_row_id"]), check.rule, check.reason(u.get(check.column))) for u in unexpected]
            (failures if check.critical else warnings).extend(found)
        return failures, warnings


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE TABLE IF NOT EXISTS ops.contract_warnings (feed VARCHAR, partition_date DATE, model_name VARCHAR, "
        "rule VARCHAR, n_rows BIGINT, example VARCHAR)"
    )


def apply_contract(con: duckdb.DuckDBPyConnection, validator: ContractValidator, feed: Feed) -> None:
    """Check the staged rows that passed parsing against the contract, in DuckDB; mark failures in
    staged_rows and keep warnings in staged_warnings (recorded per partition by record_warnings).

    Each expectation runs as its SQL translation (Check.failure_sql), one pass over the
    staged rows per model: the per-row work costs what DuckDB costs, not what pandas does.
    """
    started = time.perf_counter()
    con.execute("CREATE OR REPLACE TEMP TABLE contract_failures (_row_id BIGINT, rule VARCHAR, reason VARCHAR)")
    con.execute("CREATE OR REPLACE TEMP TABLE staged_warnings (_row_id BIGINT, rule VARCHAR, reason VARCHAR)")
    for critical, query in _contract_queries(validator, feed):
        con.execute(f"INSERT INTO {'contract_failures' if critical else 'staged_warnings'} {query}")
    validator.rows_validated += con.execute("SELECT count(*) FROM staged_rows WHERE len(_rules) = 0").fetchone()[0]
    con.execute(
        "UPDATE staged_rows SET _rules = list_concat(staged_rows._rules, f.rules), "
        "_reasons = list_concat(staged_rows._reasons, f.reasons) "
        "FROM (SELECT _row_id, list(rule ORDER BY rule) AS rules, list(reason ORDER BY rule) AS reasons "
        "FROM contract_failures GROUP BY _row_id) AS f WHERE staged_rows._row_id = f._row_id"
    )
    con.execute("DROP TABLE contract_failures")
    validator.seconds += time.perf_counter() - started


def _contract_queries(validator: ContractValidator, feed: Feed) -> Iterator[tuple[bool, str]]:
    """(critical, SELECT _row_id, rule, reason) per model group and severity: the contract as SQL."""
    for model_key, where in _model_groups(validator.config, feed):
        checks = validator.checks(feed.name, model_key)
        for critical in (True, False):
            chosen = [c for c in checks if c.critical == critical]
            if chosen:
                yield critical, failures_sql(feed, chosen, where)


def _model_groups(config: Config, feed: Feed) -> list[tuple[str, str]]:
    """(model whose checks apply, SQL condition on staged_rows selecting its rows)."""
    if not feed.has_model:
        return [(ANY_MODEL, "true")]
    names = list(config.models)
    groups = [(name, f"model_name = {_sql_value(name)}") for name in names]
    listed = ", ".join(_sql_value(name) for name in names) or "NULL"
    return groups + [(ANY_MODEL, f"(model_name IS NULL OR model_name NOT IN ({listed}))")]


def failures_sql(feed: Feed, checks: list[Check], where: str) -> str:
    """SELECT _row_id, rule, reason from staged_rows: one row per (row, expectation) the row fails."""
    text_columns = {c.name for c in feed.columns if c.type in ("VARCHAR", "JSON")}
    found = ", ".join(
        f"CASE WHEN {c.failure_sql(c.column in text_columns)} THEN "
        f"{{'rule': {_sql_value(c.rule)}, 'reason': {c.reason_sql(c.column in text_columns)}}} END"
        for c in checks)
    derived = f", {DERIVED[feed.name]}" if feed.name in DERIVED else ""
    return (f"SELECT _row_id, f.rule, f.reason FROM (SELECT _row_id, unnest(list_filter([{found}], "
            f"lambda x: x IS NOT NULL)) AS f FROM (SELECT *{derived} FROM staged_rows "
            f"WHERE len(_rules) = 0 AND {where}))")


def cross_check(con: duckdb.DuckDBPyConnection, validator: ContractValidator, feed: Feed) -> list[str]:
    """Run the contract with Great Expectations itself over staged_rows, in batches of
    contracts.batch_rows, and compare with the SQL translation: the differences, in words.

    The nightly path runs the SQL alone; the tests call this on every kind of bad value,
    so that the translation cannot drift from Great Expectations' own semantics.
    """
    has_model = feed.has_model
    columns = ", ".join(f'"{c.name}"' for c in feed.columns)
    derived = f", {DERIVED[feed.name]}" if feed.name in DERIVED else ""
    size = validator.config.contracts.batch_rows
    expected: set[tuple] = set()
    last = con.execute("SELECT coalesce(max(_row_id), -1) FROM staged_rows").fetchone()[0]
    for low in range(0, last + 1, size):
        frame = con.execute(
            f"SELECT _row_id, {columns}{derived} FROM staged_rows "
            "WHERE _row_id >= ? AND _row_id < ? AND len(_rules) = 0 ORDER BY _row_id", [low, low + size]).df()
        groups = frame.groupby("model_name", dropna=False, sort=True) if has_model else [(ANY_MODEL, frame)]
        for model, rows in groups:
            model = None if has_model and pd.isna(model) else model
            model_key = model if model in validator.config.models else ANY_MODEL
            failed, warned = validator.validate(feed.name, model_key, rows.reset_index(drop=True))
            expected |= {(*f, True) for f in failed} | {(*w, False) for w in warned}
    translated = {(*row, critical) for critical, query in _contract_queries(validator, feed)
                  for row in con.execute(query).fetchall()}
    return ([f"only Great Expectations: {d}" for d in sorted(expected - translated)]
            + [f"only the SQL: {d}" for d in sorted(translated - expected)])


def record_warnings(con: duckdb.DuckDBPyConnection, feed: Feed, day: dt.date) -> None:
    """ops.contract_warnings for one partition: per model and rule, the accepted rows that broke a warning."""
    has_model = feed.has_model
    con.execute(
        "INSERT INTO ops.contract_warnings SELECT ?, ?, "
        f"{'s.model_name' if has_model else 'NULL'}, w.rule, count(*), arg_min(w.reason, w._row_id) "
        "FROM staged_warnings AS w JOIN staged_rows AS s USING (_row_id) "
        "WHERE s._partition_date = ? AND len(s._rules) = 0 GROUP BY ALL ORDER BY ALL",
        [feed.name, day, day])
