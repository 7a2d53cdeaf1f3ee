"""The four input feeds of the landing zone and their columns (contract §1).

Predictions also carry the feature, segment and weight columns that the configuration
names; `feed_columns` adds them. Types are DuckDB types; timestamps are stored as
naive UTC TIMESTAMP so the warehouse reads the same on any engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlwatch.config import Config


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool = False

    @property
    def is_timestamp(self) -> bool:
        return self.type == "TIMESTAMP"

    @property
    def ddl_type(self) -> str:
        """JSON objects are kept as text, so the warehouse reads the same on any engine."""
        return "VARCHAR" if self.type == "JSON" else self.type


@dataclass(frozen=True)
class Feed:
    name: str
    columns: tuple[Column, ...]
    # Columns that identify a row of the feed within one partition; a second row with
    # the same key is a duplicate delivery.
    key: tuple[str, ...]
    # The timestamp column whose UTC date names the partition.
    partition_column: str | None

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def has_model(self) -> bool:
        """Whether its rows name their model (stage telemetry belongs to the pipeline)."""
        return any(c.name == "model_name" for c in self.columns)


_PREDICTIONS = (
    Column("prediction_id", "VARCHAR", True),
    Column("model_name", "VARCHAR", True),
    Column("model_version", "VARCHAR", True),
    Column("event_at", "TIMESTAMP", True),
    Column("predicted_at", "TIMESTAMP", True),
    Column("score", "DOUBLE", True),
    Column("predicted_label", "VARCHAR"),
    Column("latency_ms", "DOUBLE"),
    Column("cost_usd", "DOUBLE"),
    Column("entity_id", "VARCHAR"),
    # Multiclass models: {"class": probability, ...}; log loss needs the true class's.
    Column("class_probabilities", "JSON"),
)
_LABELS = (
    Column("prediction_id", "VARCHAR", True),
    Column("model_name", "VARCHAR", True),
    Column("label", "VARCHAR", True),
    Column("labeled_at", "TIMESTAMP", True),
    Column("weight", "DOUBLE"),
)
_COSTS = (
    Column("model_name", "VARCHAR", True),
    Column("component", "VARCHAR", True),
    Column("cost_usd", "DOUBLE", True),
)
_STAGES = (
    Column("stage", "VARCHAR", True),
    Column("window_start", "TIMESTAMP", True),
    Column("window_seconds", "DOUBLE", True),
    Column("records_in", "BIGINT"),
    Column("records_out", "BIGINT", True),
    Column("records_dropped", "BIGINT"),
    Column("busy_seconds", "DOUBLE", True),
    Column("workers", "INTEGER", True),
    Column("queue_depth", "BIGINT"),
    Column("p95_latency_ms", "DOUBLE"),
    Column("failure_mode", "VARCHAR"),
    Column("failures", "BIGINT"),
)

FEED_NAMES = ("predictions", "labels", "costs", "stages")
_TYPES = {"numeric": "DOUBLE", "categorical": "VARCHAR"}


def feed_definitions(config: Config) -> dict[str, Feed]:
    extra = tuple(Column(name, _TYPES[kind]) for name, kind in config.prediction_columns().items())
    return {
        "predictions": Feed("predictions", _PREDICTIONS + extra, ("model_name", "prediction_id"), "predicted_at"),
        # A label row is identified by its prediction and the moment it was given: a
        # later labeled_at is a correction, the same one twice is a duplicate delivery.
        "labels": Feed("labels", _LABELS, ("model_name", "prediction_id", "labeled_at"), "labeled_at"),
        "costs": Feed("costs", _COSTS, ("model_name", "component"), None),
        "stages": Feed("stages", _STAGES, ("stage", "window_start"), "window_start"),
    }
