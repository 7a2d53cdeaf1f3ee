"""The configuration file (contract §2): one YAML file, validated on load.

Found at --config, else $MLWATCH_CONFIG, else ./mlwatch.yml; with none of them the
embedded demo configuration is used, so a fresh checkout runs with no setup. Paths in
a file are relative to the file; MLWATCH_LANDING / MLWATCH_WAREHOUSE / MLWATCH_REPORTS
override them. An invalid file fails fast with the key, the value and what was expected.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlwatch.errors import ConfigError
from mlwatch.metric_catalog import DEFAULT_PERFORMANCE_METRIC, METRICS_BY_TASK, TASKS

CONFIG_ENV = "MLWATCH_CONFIG"
PATH_ENV = {"landing": "MLWATCH_LANDING", "warehouse": "MLWATCH_WAREHOUSE", "reports": "MLWATCH_REPORTS"}

# Names that end up as SQL identifiers or inside SQL string literals.
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_RESERVED_COLUMNS = {
    "prediction_id", "model_name", "model_version", "event_at", "predicted_at", "score",
    "predicted_label", "latency_ms", "cost_usd", "entity_id", "label", "labeled_at", "weight",
}
PLAYBOOK_DIGEST = "digest"
# Adaptive ranking (issue 21): a window's ROC AUC and PR AUC come from this many equal
# score bins when the binning's proven error is below a tenth of the interval's
# half-width (dbt/macros/ranking.sql); fine enough that a window of a million labels
# still qualifies, coarse enough that a window's bins stay far fewer than its rows.
ADAPTIVE_RANKING_BINS = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Strict):
    type: Literal["numeric", "categorical"]
    min: float | None = None
    max: float | None = None
    values: list[str] | None = None
    default: str | float | None = None
    critical: bool = False
    cost: float | None = Field(default=None, ge=0, description="compute cost per prediction")

    @model_validator(mode="after")
    def _fits_type(self) -> "FeatureSpec":
        if self.type == "categorical" and (self.min is not None or self.max is not None):
            raise ValueError("min/max apply to numeric features only")
        if self.type == "numeric" and self.values is not None:
            raise ValueError("values apply to categorical features only")
        if self.type == "numeric" and isinstance(self.default, str):
            raise ValueError(f"default {self.default!r} of a numeric feature must be a number")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class PerformanceSLO(_Strict):
    metric: str | None = None
    max_relative_drop: float = Field(default=0.05, gt=0, lt=1)
    min_labeled: int = Field(default=200, ge=1)
    window_days: int | None = Field(default=None, ge=1, description="window the rule judges; default: 7 if configured, else the largest")
    segment_p_value: float = Field(default=0.01, gt=0, lt=1, description="segment drops: after Benjamini-Hochberg")
    resolve_after_days: int = Field(
        default=3, ge=1, description="a performance alert resolves after this many nights in a row without its "
                                     "condition (a noisy window that dips back under the test keeps its alert)")


class SLOs(_Strict):
    time_to_decision_p95_s: float | None = Field(default=None, gt=0)
    performance: PerformanceSLO = PerformanceSLO()
    min_feature_coverage: float | None = Field(default=None, ge=0, le=1)
    max_data_loss: float | None = Field(default=None, ge=0, le=1)
    max_cost_per_prediction_usd: float | None = Field(default=None, ge=0)
    min_label_coverage: float | None = Field(default=None, ge=0, le=1)


class DriftConfig(_Strict):
    numeric: list[Literal["ks", "psi", "wasserstein"]] = ["ks", "psi", "wasserstein"]
    categorical: list[Literal["chi2", "psi", "jensen_shannon"]] = ["chi2", "psi", "jensen_shannon"]
    psi_threshold: float = Field(default=0.2, gt=0)
    distance_threshold: float = Field(default=0.1, gt=0)
    p_value: float = Field(default=0.01, gt=0, lt=1)
    min_samples: int = Field(default=200, ge=1)
    impact_threshold: float = Field(
        default=0.05, gt=0,
        description="a drifted feature moves the score if the shift explains this many reference score std devs")


class Reference(_Strict):
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> "Reference":
        if self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self


class ModelConfig(_Strict):
    task: Literal["binary_classification", "multiclass_classification", "regression"]
    owner: str | None = None
    slack_channel: str | None = None
    positive_label: str = "1"
    decision_threshold: float = Field(default=0.5, ge=0, le=1)
    label_delay_days: int = Field(default=30, ge=0, le=366)
    reference: Reference
    windows: list[int] = [1, 7, 30]
    segments: list[str] = []
    segment_top_k: int = Field(default=10, ge=1, description="values per segment column; the rest go to 'other'")
    min_labeled_rows: int = Field(default=30, ge=1, description="fewer labeled rows and a metric is NULL")
    ranking_bins: int | Literal["exact"] | None = Field(
        default=None,
        description="binary models: 'exact' ranks every window's scores exactly; a number ranks them in that "
                    "many equal bins of [0, 1] everywhere; unset, a window is ranked in "
                    f"{ADAPTIVE_RANKING_BINS:,} bins where that cannot change a decision, else exactly")
    label_values: list[str] | None = Field(default=None, description="allowed labels (classifiers)")
    weight_column: str | None = None
    features: dict[str, FeatureSpec] = {}
    slos: SLOs = SLOs()
    drift: DriftConfig = DriftConfig()
    playbooks: dict[str, str] = {}

    @field_validator("ranking_bins")
    @classmethod
    def _bins_in_range(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and not 100 <= value <= 100_000_000:
            raise ValueError(f"expected 'exact' or a number of bins greater than or equal to 100 "
                             f"and at most 100000000, got {value}")
        return value

    @field_validator("positive_label", mode="before")
    @classmethod
    def _label_as_text(cls, value: Any) -> Any:
        # YAML reads `positive_label: 1` as an int; labels are strings in the contract.
        return str(value) if isinstance(value, (int, float)) else value

    @field_validator("windows")
    @classmethod
    def _windows(cls, value: list[int]) -> list[int]:
        if not value or any(w < 1 for w in value):
            raise ValueError("windows must be a non-empty list of positive day counts")
        return sorted(set(value))

    @model_validator(mode="after")
    def _consistent(self) -> "ModelConfig":
        for name in [*self.features, *self.segments]:
            if not _IDENTIFIER.match(name):
                raise ValueError(f"column name {name!r} must be a plain identifier (letters, digits, _)")
            if name in _RESERVED_COLUMNS:
                raise ValueError(f"column name {name!r} is a contract column, not a feature or segment")
        if self.weight_column is not None and not _IDENTIFIER.match(self.weight_column):
            raise ValueError(f"weight_column {self.weight_column!r} must be a plain identifier")
        metric = self.slos.performance.metric
        if metric is not None and metric not in METRICS_BY_TASK[self.task]:
            raise ValueError(
                f"slos.performance.metric {metric!r} is not a {self.task} metric; "
                f"expected one of {sorted(METRICS_BY_TASK[self.task])}"
            )
        if self.ranking_bins is not None and self.task != "binary_classification":
            raise ValueError("ranking_bins applies to binary_classification models (ROC AUC, PR AUC) only")
        window = self.slos.performance.window_days
        if window is not None and window not in self.windows:
            raise ValueError(f"slos.performance.window_days {window} is not one of windows {self.windows}")
        return self

    @property
    def ranking(self) -> tuple[str, int]:
        """How ROC AUC and PR AUC rank: ('exact' | 'binned' | 'adaptive', bins)."""
        if self.ranking_bins == "exact":
            return "exact", ADAPTIVE_RANKING_BINS
        if self.ranking_bins is not None:
            return "binned", self.ranking_bins
        return "adaptive", ADAPTIVE_RANKING_BINS

    @property
    def allowed_labels(self) -> list[str] | None:
        """The label set the contract checks: configured, or 0/1 for a binary model whose positive label is 0 or 1."""
        if self.label_values is not None:
            return sorted(set(self.label_values) | ({self.positive_label} if self.task == "binary_classification" else set()))
        if self.task == "binary_classification" and self.positive_label in ("0", "1"):
            return ["0", "1"]
        return None

    @property
    def performance_metric(self) -> str:
        return self.slos.performance.metric or DEFAULT_PERFORMANCE_METRIC[self.task]

    @property
    def alert_window_days(self) -> int:
        if self.slos.performance.window_days is not None:
            return self.slos.performance.window_days
        return 7 if 7 in self.windows else max(self.windows)

    def column_types(self) -> dict[str, str]:
        """Extra prediction columns this model reads: features, segments, weight."""
        columns = {name: spec.type for name, spec in self.features.items()}
        for segment in self.segments:
            columns.setdefault(segment, "categorical")
        if self.weight_column:
            columns.setdefault(self.weight_column, "numeric")
        return columns


class ContractsConfig(_Strict):
    """Row rules of the data contract that are not in the feed definitions."""

    clock_skew_s: float = Field(default=5, ge=0, description="predicted_at may precede event_at by this much")
    max_decision_s: float = Field(default=7 * 86400, gt=0, description="longest sane predicted_at - event_at")
    batch_rows: int = Field(default=100_000, ge=1000, description="rows per Great Expectations batch when the SQL contract is cross-checked with GE itself (bounds memory)")


class ConstraintConfig(_Strict):
    """How marts.constraint_ledger names the stage that limits the pipeline."""

    saturation_utilization: float = Field(
        default=0.9, gt=0, le=1, description="peak-hour utilization at which a stage with a growing queue saturates")
    what_if_factor: float = Field(default=2.0, gt=1, description="capacity multiplier of the what-if")


class ReportConfig(_Strict):
    """The daily HTML report."""

    history_days: int = Field(default=30, ge=1, description="days of history the report's charts show")
    url: str | None = Field(default=None, description="where users open the reports folder (Slack links to it)")


class Playbook(_Strict):
    title: str
    steps: list[str] = []
    action: Literal["rollback", "retrain", "review", "none"] | None = None
    command: str | None = None


class SlackConfig(_Strict):
    connection_id: str = "slack_api_default"
    default_channel: str = "#ml-alerts"
    alerts_per_day: int = Field(default=10, ge=0)


class Config(_Strict):
    landing: Path = Path("data/landing")
    warehouse: Path = Path("warehouse/mlwatch.duckdb")
    # DuckDB's memory for the dbt build: beyond it, sorts and aggregations spill to disk
    # beside the warehouse instead of taking the machine's memory (DuckDB's own default,
    # 80% of RAM, suits a machine of its own, not a shared worker).
    warehouse_memory_limit: str = Field(
        default="80%", pattern=r"^\s*\d+(\.\d+)?\s*(%|[KMGT]i?B)\s*$",
        description="memory the dbt build may use, e.g. 4GB or 50% (of RAM)")
    reports: Path = Path("reports")
    slack: SlackConfig = SlackConfig()
    pipeline: list[str] = []
    constraint: ConstraintConfig = ConstraintConfig()
    report: ReportConfig = ReportConfig()
    contracts: ContractsConfig = ContractsConfig()
    models: dict[str, ModelConfig]
    playbooks: dict[str, Playbook] = {}
    # Where the file came from, for messages; not part of the YAML.
    source: str = Field(default="<embedded>", exclude=True)

    @model_validator(mode="after")
    def _consistent(self) -> "Config":
        if not self.models:
            raise ValueError("models: at least one model must be configured")
        # Imported here: alerts.playbooks builds its playbooks from this module's Playbook.
        from mlwatch.alerts.playbooks import BUILT_IN as BUILT_IN_PLAYBOOKS

        for name, model in self.models.items():
            if not _MODEL_NAME.match(name):
                raise ValueError(f"model name {name!r} may use letters, digits, '_', '.' and '-' only")
            for kind, playbook in model.playbooks.items():
                if playbook != PLAYBOOK_DIGEST and playbook not in self.playbooks and playbook not in BUILT_IN_PLAYBOOKS:
                    raise ValueError(
                        f"models.{name}.playbooks.{kind}: playbook {playbook!r} is not defined under "
                        f"playbooks: (defined: {sorted(self.playbooks)}, mlwatch's built-in "
                        f"{sorted(BUILT_IN_PLAYBOOKS)}, or 'digest')"
                    )
        seen: dict[str, tuple[str, str]] = {}
        for name, model in self.models.items():
            for column, kind in model.column_types().items():
                if column in seen and seen[column][1] != kind:
                    other = seen[column][0]
                    raise ValueError(
                        f"column {column!r} is {kind} in model {name!r} but {seen[column][1]} in model "
                        f"{other!r}; one prediction column has one type"
                    )
                seen[column] = (name, kind)
        return self

    def prediction_columns(self) -> dict[str, str]:
        """Every extra prediction column any model reads, with its type (numeric/categorical)."""
        columns: dict[str, str] = {}
        for model in self.models.values():
            columns.update(model.column_types())
        return dict(sorted(columns.items()))

    def channel_for(self, model_name: str) -> str:
        return self.models[model_name].slack_channel or self.slack.default_channel

    @property
    def max_label_delay_days(self) -> int:
        return max(m.label_delay_days for m in self.models.values())

    @property
    def max_window_days(self) -> int:
        return max(max(m.windows) for m in self.models.values())


def embedded_config_text() -> str:
    return resources.files("mlwatch.demo").joinpath("mlwatch.yml").read_text()


def find_config_path(explicit: str | os.PathLike | None = None) -> Path | None:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; pass an existing file to --config")
        return path
    if os.environ.get(CONFIG_ENV):
        path = Path(os.environ[CONFIG_ENV])
        if not path.is_file():
            raise ConfigError(f"${CONFIG_ENV} points to {path}, which does not exist")
        return path
    local = Path("mlwatch.yml")
    return local if local.is_file() else None


def load_config(explicit: str | os.PathLike | None = None) -> Config:
    """The configuration from --config, else $MLWATCH_CONFIG, else ./mlwatch.yml.

    Without one, mlwatch refuses to run: the embedded demo configuration would build an
    empty warehouse and report an all-clear about data it was never pointed at. Only
    `mlwatch demo` uses it (embedded_config).
    """
    path = find_config_path(explicit)
    if path is None:
        raise ConfigError(
            f"no configuration: no --config, no ${CONFIG_ENV}, and no mlwatch.yml in {Path.cwd()}. Write one "
            "(README, section Configuration; the annotated example is include/mlwatch/demo/mlwatch.yml) and pass "
            "it with --config, or run `mlwatch demo` to try mlwatch on sample data")
    return parse_config(path.read_text(), source=str(path), base_dir=path.resolve().parent)


def embedded_config() -> Config:
    """The demo's configuration, with its paths relative to the working directory."""
    return parse_config(embedded_config_text(), source="<embedded>", base_dir=Path.cwd())


def parse_config(text: str, *, source: str, base_dir: Path) -> Config:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        config = Config.model_validate({**raw, "source": source})
    except ValidationError as exc:
        raise ConfigError(_describe(source, exc)) from None
    return _resolve_paths(config, base_dir)


def _resolve_paths(config: Config, base_dir: Path) -> Config:
    resolved = {}
    for key, env in PATH_ENV.items():
        if os.environ.get(env):
            resolved[key] = Path(os.environ[env]).resolve()
        else:
            value = getattr(config, key)
            resolved[key] = value if value.is_absolute() else (base_dir / value).resolve()
    return config.model_copy(update=resolved)


def _describe(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: invalid configuration"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        value = error.get("input")
        shown = repr(value) if not isinstance(value, dict) else "{...}"
        lines.append(f"  {key}: {error['msg']} (got {shown})")
    lines.append("Fix the keys above; every option is in the README's Configuration section and, annotated, "
                 "in the demo's configuration (include/mlwatch/demo/mlwatch.yml, written by `mlwatch demo`).")
    return "\n".join(lines)
