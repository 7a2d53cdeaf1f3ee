"""The incidents injected into the demo data set, with their dates.

One list serves the generator (what to inject), the tests (what must be detected,
and when) and the README (what a user should find). Offsets are days from the demo's
first day; with the default start, 2026-08-01, the dates are the ones in the comments.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

DEMO_START = dt.date(2026, 8, 1)
DEMO_DAYS = 60


@dataclass(frozen=True)
class Incident:
    key: str
    model: str | None
    alert_kind: str          # the alert kind (a key of the model's playbooks) it should raise
    first_offset: int        # first affected day, counted from the demo start
    last_offset: int | None  # last affected day; None: lasts to the end of the data
    description: str

    def first_day(self, start: dt.date = DEMO_START) -> dt.date:
        return start + dt.timedelta(days=self.first_offset)

    def last_day(self, start: dt.date = DEMO_START, days: int = DEMO_DAYS) -> dt.date:
        offset = self.last_offset if self.last_offset is not None else days - 1
        return start + dt.timedelta(days=offset)

    def covers(self, day: dt.date, start: dt.date = DEMO_START, days: int = DEMO_DAYS) -> bool:
        return self.first_day(start) <= day <= self.last_day(start, days)


# card_fraud 1.5.0 goes to 10% canary traffic on 2026-08-31 and to all traffic on
# 2026-09-02; in country BR its ranking power drops sharply (ROC AUC about -0.08)
# while the model as a whole loses about 1%, inside its 2% tolerance: a quiet drop.
RELEASE = Incident(
    "release_degrades_segment", "card_fraud", "segment_performance_drop", 30, None,
    "card_fraud 1.5.0 (canary on 2026-08-31, all traffic from 2026-09-02) ranks much worse in "
    "country=BR; other countries are unaffected and the overall drop stays inside tolerance",
)
# 2026-09-10 .. 2026-09-12: account_age_days arrives as its default (-1) for 35% of traffic.
FEATURE_OUTAGE = Incident(
    "feature_outage", "card_fraud", "coverage_drop", 40, 42,
    "account_age_days (critical) is sent as its default -1 for 35% of card_fraud traffic",
)
# From 2026-09-15: session_length_s grows by 60%; the model does not use it.
COVARIATE_DRIFT = Incident(
    "covariate_drift", "card_fraud", "drift", 45, None,
    "session_length_s shifts up by 60% from 2026-09-15; it has no effect on the outcome or the score",
)
# 2026-09-20 .. 2026-09-22: delivery_eta's GPU bill is five times its usual size.
COST_SPIKE = Incident(
    "cost_spike", "delivery_eta", "cost_over_budget", 50, 52,
    "delivery_eta's gpu cost is 5x its usual daily amount, pushing cost per prediction over budget",
)
# 2026-09-24 .. 2026-09-29: feature_tier2 slows down (a slow downstream lookup); its
# queue grows during the day and time to decision goes past the 300 s SLO.
STAGE_SATURATION = Incident(
    "stage_saturation", None, "time_to_decision_breach", 54, 59,
    "feature_tier2's per-record work grows about 3x; utilization near 1, a growing queue, "
    "and time to decision p95 past 300 s for both models",
)

# 2026-08-18: a retried export lands a second, dirty card_fraud file. Its bad rows are
# quarantined (exact counts in DIRTY_ROWS) and push the day's data loss over 0.1%.
DIRTY_EXPORT = Incident(
    "dirty_export", "card_fraud", "data_loss", 17, 17,
    "a retried card_fraud export (card_fraud_retry.csv) brings 45 bad rows: scores above 1, missing ids, "
    "copies of rows already delivered, decisions before their event, malformed lines",
)

INCIDENTS = [RELEASE, FEATURE_OUTAGE, COVARIATE_DRIFT, COST_SPIKE, STAGE_SATURATION, DIRTY_EXPORT]

# Every dirty row the generator writes, by (feed, day offset) and the first rule it breaks.
# Quarantine must hold exactly these; nothing else is dirty.
DIRTY_ROWS: dict[tuple[str, int], dict[str, int]] = {
    ("predictions", 17): {
        "range:score": 12,
        "required:prediction_id": 8,
        "duplicate:model_name/prediction_id": 15,
        "range:time_to_decision_s": 6,
        "malformed:csv": 4,
    },
    ("labels", 24): {"in_set:label": 10, "malformed:json": 3},
    ("costs", 24): {"duplicate:model_name/component": 1},
    ("stages", 35): {"in_set:stage": 2},
}
# Values outside the contract that are kept (the model decided on them) and counted
# invalid in marts.feature_coverage: 20 card_fraud rows with merchant_category 'crypto'.
INVALID_FEATURE_VALUES = {(35, "merchant_category"): 20}
