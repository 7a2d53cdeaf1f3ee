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
# 2026-08-22 .. 2026-08-30, right after the reference period: a gaming partner's top-up
# promotion makes 40% of card_fraud traffic mid-size gaming payments from year-old accounts.
# The model is unchanged and its scores stay calibrated (the odds of fraud given the score
# are what they were: a covariate shift), but these payments crowd a narrow band of scores
# where fraud and honest payments overlap, so ROC AUC falls about 4% and accuracy about 3
# points. The estimate from the scores can see it while the chargebacks lag; the release's
# canary (RELEASE) ends the period in which the estimate is reliable, hence the dates.
PROMOTION_SHIFT = Incident(
    "promotion_shift", "card_fraud", "estimated_performance_drop", 21, 29,
    "a gaming top-up promotion: 40% of card_fraud traffic is mid-size gaming payments from year-old "
    "accounts, scored where the model is unsure; ROC AUC falls about 4% while the chargebacks lag",
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
# quarantined (exact counts: dirty_rows) and push the day's data loss to about 0.25%, over
# the 0.1% SLO.
DIRTY_EXPORT = Incident(
    "dirty_export", "card_fraud", "data_loss", 17, 17,
    "a retried card_fraud export (card_fraud_retry.csv) brings bad rows, 0.5% of the day's card_fraud "
    "predictions: scores above 1, missing ids, copies of rows already delivered, decisions before their "
    "event, malformed lines",
)

INCIDENTS = [PROMOTION_SHIFT, RELEASE, FEATURE_OUTAGE, COVARIATE_DRIFT, COST_SPIKE, STAGE_SATURATION, DIRTY_EXPORT]

# Every dirty row the generator writes at the demo's full volume, by (feed, day offset) and
# the first rule it breaks. Quarantine must hold exactly these (dirty_rows); nothing else
# is dirty.
_DIRTY_ROWS_AT_FULL_VOLUME: dict[tuple[str, int], dict[str, int]] = {
    ("predictions", 17): {
        "range:score": 40,
        "required:prediction_id": 30,
        "duplicate:model_name/prediction_id": 50,
        "range:time_to_decision_s": 20,
        "malformed:csv": 10,
    },
    ("labels", 24): {"in_set:label": 10, "malformed:json": 3},
    ("costs", 24): {"duplicate:model_name/component": 1},
    ("stages", 35): {"in_set:stage": 2},
}
FULL_VOLUME_FRAUD_PER_DAY = 30_000
# Feeds whose daily rows grow with the traffic; costs and stages have a fixed number a day.
_FEEDS_WITH_TRAFFIC = ("predictions", "labels")


def dirty_rows(fraud_per_day: int = FULL_VOLUME_FRAUD_PER_DAY) -> dict[tuple[str, int], dict[str, int]]:
    """The dirty rows of a demo with `fraud_per_day` card_fraud predictions a day.

    The traffic feeds' dirt scales with the traffic (at least one row per rule), so that a
    day's data loss, a share, is about the same at any size: the data-loss incident breaches
    the demo's 0.1% SLO, and the dirty labels' day stays under it, in the test-sized demo
    as in the real one.
    """
    scale = fraud_per_day / FULL_VOLUME_FRAUD_PER_DAY
    return {
        (feed, offset): {rule: max(1, round(n * scale)) if feed in _FEEDS_WITH_TRAFFIC else n
                         for rule, n in rules.items()}
        for (feed, offset), rules in _DIRTY_ROWS_AT_FULL_VOLUME.items()
    }


# Values outside the contract that are kept (the model decided on them) and counted
# invalid in marts.feature_coverage: 20 card_fraud rows with merchant_category 'crypto'.
INVALID_FEATURE_VALUES = {(35, "merchant_category"): 20}
