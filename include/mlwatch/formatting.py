"""How pages and messages print numbers and names: the Jinja filters of the daily report, the
Airflow plugin's ledger, and the alert messages' durations and model names."""

from __future__ import annotations

import math
from decimal import Decimal

from mlwatch.alerts.candidate import PIPELINE


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def number(value) -> str:
    if isinstance(value, Decimal):
        value = float(value)
    if missing(value):
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return f"{int(value):,}"      # a whole number read as 3.0000 looks like a measurement
    magnitude = abs(value)
    return f"{value:,.2f}" if magnitude >= 10 else (f"{value:.4f}" if magnitude >= 0.01 else f"{value:.6f}")


def count(value) -> str:
    """Rows, records, ranks: whole numbers, though the marts may hand them over as floats."""
    return "" if missing(value) else f"{round(value):,}"


def duration(seconds) -> str:
    """A duration in the unit a person reads it in: 84 ms, 1.7 s, 36.8 min, 2.5 h."""
    if missing(seconds):
        return ""
    for unit, size in (("h", 3600), ("min", 60), ("s", 1)):
        if abs(seconds) >= size:
            return f"{seconds / size:,.1f}".removesuffix(".0") + f" {unit}"
    return f"{seconds * 1000:,.0f} ms"


def duration_ms(milliseconds) -> str:
    return "" if missing(milliseconds) else duration(milliseconds / 1000)


def slo_value(value, slo: str) -> str:
    """An SLO's target or actual: a duration when the SLO is in seconds (its name ends in _s)."""
    return duration(value) if slo.endswith("_s") else number(value)


def pct(value) -> str:
    if missing(value):
        return ""
    return f"{value:.1%}"


def model_label(name: str) -> str:
    """A model as people read it: the pipeline's internal owner name is not a model."""
    return "the pipeline (several models)" if name == PIPELINE else name


FILTERS = {"model_label": model_label, "number": number, "count": count, "duration": duration, "duration_ms": duration_ms,
           "slo_value": slo_value, "pct": pct}
