"""The metrics of marts.performance (contract §3): which task has which, and which way is better.

The values themselves are computed in the warehouse (dbt/models/marts/performance.sql);
this catalog is what configuration validation and alert rules need to know about them.
"""

from dataclasses import dataclass

BINARY = "binary_classification"
MULTICLASS = "multiclass_classification"
REGRESSION = "regression"
TASKS = (BINARY, MULTICLASS, REGRESSION)


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    # A proportion (a share of rows) gets a Wilson interval; others get their own.
    is_proportion: bool = False


_BINARY = [
    Metric("roc_auc", True),
    Metric("pr_auc", True),
    Metric("accuracy", True, is_proportion=True),
    Metric("precision", True, is_proportion=True),
    Metric("recall", True, is_proportion=True),
    Metric("f1", True),
    Metric("log_loss", False),
    Metric("brier", False),
    Metric("positive_rate", True, is_proportion=True),
    Metric("weighted_recall", True),
]
_REGRESSION = [
    Metric("mae", False),
    Metric("rmse", False),
    Metric("mape", False),
    Metric("r2", True),
]
_MULTICLASS = [
    Metric("accuracy", True, is_proportion=True),
    Metric("macro_f1", True),
    Metric("log_loss", False),
]

METRICS_BY_TASK: dict[str, dict[str, Metric]] = {
    BINARY: {m.name: m for m in _BINARY},
    REGRESSION: {m.name: m for m in _REGRESSION},
    MULTICLASS: {m.name: m for m in _MULTICLASS},
}

DEFAULT_PERFORMANCE_METRIC = {BINARY: "roc_auc", REGRESSION: "mae", MULTICLASS: "macro_f1"}


def metric(task: str, name: str) -> Metric:
    return METRICS_BY_TASK[task][name]


def relative_degradation(task: str, name: str, value: float, reference: float) -> float:
    """How much worse `value` is than `reference`, as a share of the reference.

    Positive means worse, whatever the metric's direction (AUC falling, MAE rising).
    """
    if reference == 0:
        return 0.0
    change = (value - reference) / abs(reference)
    return -change if metric(task, name).higher_is_better else change
