"""The data contract as Great Expectations suites, run on bounded batches of each partition.

Suites are generated from the configuration, one per feed and model (stages: one per
feed). The rows a partition staged in DuckDB (staged_rows, see ingest.py) are read
back in batches of `contracts.batch_rows` as DataFrames, so a night's memory stays
bounded whatever the size of a partition; Great Expectations' SQL data source is not
used because it fails on every expectation against DuckDB in 1.24 (../shared/STACK.md).

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
from typing import Any

import duckdb
import pandas as pd

from mlwatch.config import Config, ModelConfig
from mlwatch.feeds import Feed

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
    """Validate the staged rows that passed parsing, in bounded batches; mark failures in staged_rows
    and keep warnings in staged_warnings (recorded per partition by record_warnings)."""
    con.execute("CREATE OR REPLACE TEMP TABLE contract_failures (_row_id BIGINT, rule VARCHAR, reason VARCHAR)")
    con.execute("CREATE OR REPLACE TEMP TABLE staged_warnings (_row_id BIGINT, rule VARCHAR, reason VARCHAR)")
    has_model = any(c.name == "model_name" for c in feed.columns)
    columns = ", ".join(f'"{c.name}"' for c in feed.columns)
    derived = f", {DERIVED[feed.name]}" if feed.name in DERIVED else ""
    size = validator.config.contracts.batch_rows
    started = time.perf_counter()
    last = con.execute("SELECT coalesce(max(_row_id), -1) FROM staged_rows").fetchone()[0]
    # Ranges of _row_id keep each batch, and so the night's memory, bounded.
    for low in range(0, last + 1, size):
        frame = con.execute(
            f"SELECT _row_id, {columns}{derived} FROM staged_rows "
            "WHERE _row_id >= ? AND _row_id < ? AND len(_rules) = 0 ORDER BY _row_id", [low, low + size]).df()
        groups = frame.groupby("model_name", dropna=False, sort=True) if has_model else [(ANY_MODEL, frame)]
        for model, rows in groups:
            model = None if has_model and pd.isna(model) else model
            model_key = model if model in validator.config.models else ANY_MODEL
            failed, warned = validator.validate(feed.name, model_key, rows.reset_index(drop=True))
            validator.rows_validated += len(rows)
            if failed:
                con.executemany("INSERT INTO contract_failures VALUES (?, ?, ?)", failed)
            if warned:
                con.executemany("INSERT INTO staged_warnings VALUES (?, ?, ?)", warned)
    con.execute(
        "UPDATE staged_rows SET _rules = list_concat(staged_rows._rules, f.rules), "
        "_reasons = list_concat(staged_rows._reasons, f.reasons) "
        "FROM (SELECT _row_id, list(rule ORDER BY rule) AS rules, list(reason ORDER BY rule) AS reasons "
        "FROM contract_failures GROUP BY _row_id) AS f WHERE staged_rows._row_id = f._row_id"
    )
    con.execute("DROP TABLE contract_failures")
    validator.seconds += time.perf_counter() - started


def record_warnings(con: duckdb.DuckDBPyConnection, feed: Feed, day: dt.date) -> None:
    """ops.contract_warnings for one partition: per model and rule, the accepted rows that broke a warning."""
    has_model = any(c.name == "model_name" for c in feed.columns)
    con.execute(
        "INSERT INTO ops.contract_warnings SELECT ?, ?, "
        f"{'s.model_name' if has_model else 'NULL'}, w.rule, count(*), arg_min(w.reason, w._row_id) "
        "FROM staged_warnings AS w JOIN staged_rows AS s USING (_row_id) "
        "WHERE s._partition_date = ? AND len(s._rules) = 0 GROUP BY ALL ORDER BY ALL",
        [feed.name, day, day])
