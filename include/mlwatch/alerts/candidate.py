"""What an alert rule found on one night, before the lifecycle decides what it means."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("info", "warning", "critical")
# The owner of an alert about the serving pipeline rather than one model (several models, stage telemetry).
PIPELINE = "__pipeline__"


@dataclass(frozen=True)
class Candidate:
    kind: str                 # a key of the model's playbooks map
    model_name: str
    dedupe_key: str           # the same condition on another night has the same key
    severity: str
    title: str
    run_date: dt.date
    since: dt.date | None = None        # first day of the current streak, from the marts
    model_version: str | None = None
    segment: str | None = None
    segment_value: str | None = None
    metric: str | None = None
    window_days: int | None = None
    value: float | None = None
    reference_value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    # The dedupe key of the alert that explains this one: it may keep an open alert
    # open, but it opens none.
    suppressed_by: str | None = None
    # Tonight's figures of an open drop that has not recovered (rules.still_degraded): it
    # keeps that alert open, and opens none.
    holds_open: bool = False


def alert_id(dedupe_key: str, first_seen: dt.date) -> str:
    """Stable across reruns: the condition's key and the night it was first seen."""
    digest = hashlib.sha1(f"{dedupe_key}|{first_seen.isoformat()}".encode()).hexdigest()
    return f"mlw-{digest[:10]}"
