"""A realistic landing zone for two models, deterministic from a seed.

card_fraud (binary) and delivery_eta (regression) serve through one five-stage
pipeline. Outcomes are drawn from a known data-generating process, the models' scores
are noisy estimates of it, labels arrive days later (some never, a few corrected),
costs and stage telemetry come from the same simulated traffic. The incidents in
`incidents.py` are injected on their dates.

Every day is drawn from its own random stream (seed, model, day), so any day can be
regenerated alone and a smaller data set (fewer rows per day) keeps the incidents.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import duckdb
import numpy as np
import pandas as pd

from mlwatch.demo import incidents as inc

SECONDS_PER_DAY = 86_400
SLOT_SECONDS = 300
SLOTS = SECONDS_PER_DAY // SLOT_SECONDS


@dataclass(frozen=True)
class DemoSpec:
    start: dt.date = inc.DEMO_START
    days: int = inc.DEMO_DAYS
    fraud_per_day: int = inc.FULL_VOLUME_FRAUD_PER_DAY
    eta_per_day: int = 15_000
    seed: int = 20260801

    @property
    def end(self) -> dt.date:
        return self.start + dt.timedelta(days=self.days - 1)

    def day(self, offset: int) -> dt.date:
        return self.start + dt.timedelta(days=offset)


# Share of traffic per five-minute slot: quiet nights, a broad afternoon peak.
_HOURS = (np.arange(SLOTS) + 0.5) / (SLOTS / 24)
LOAD_PROFILE = 0.3 + np.exp(-(((_HOURS - 14.5) / 4.0) ** 2))
LOAD_PROFILE = LOAD_PROFILE / LOAD_PROFILE.sum()

# The serving pipeline: workers and seconds of work per record, in order.
STAGES = {
    "ingest": (2, 0.05),
    "feature_tier1": (2, 1.0),
    "feature_tier2": (4, 1.2),
    "inference": (3, 0.5),
    "alerting": (2, 0.2),
}
# Requests per day through the pipeline, whatever share of them a test logs.
PIPELINE_REQUESTS_PER_DAY = 45_000
# feature_tier2's seconds per record on each day of the saturation incident.
SATURATED_TIER2_SECONDS = [3.8, 3.9, 4.0, 4.1, 4.2, 4.3]
FAILURE_MODES = {
    "ingest": "schema_mismatch",
    "feature_tier1": "cache_miss_timeout",
    "feature_tier2": "lookup_timeout",
    "inference": "model_error",
    "alerting": "webhook_error",
}

COUNTRIES = ["US", "GB", "DE", "FR", "BR", "IN", "MX", "CA"]
COUNTRY_P = [0.40, 0.12, 0.10, 0.08, 0.12, 0.08, 0.06, 0.04]
COUNTRY_RISK = dict(zip(COUNTRIES, [0.0, -0.1, -0.2, -0.1, 0.4, 0.2, 0.3, -0.1]))
DEVICES = ["ios", "android", "web"]
DEVICE_P = [0.4, 0.4, 0.2]
DEVICE_RISK = {"ios": -0.2, "android": 0.1, "web": 0.5}
MERCHANTS = ["grocery", "travel", "electronics", "gaming"]
MERCHANT_P = [0.45, 0.15, 0.25, 0.15]
MERCHANT_RISK = {"grocery": -0.5, "travel": 0.3, "electronics": 0.6, "gaming": 1.0, "unknown": 0.0}
CITIES = ["NYC", "LA", "CHI", "HOU", "PHX", "PHL", "SEA", "DEN"]
CITY_P = [0.30, 0.20, 0.15, 0.10, 0.08, 0.07, 0.05, 0.05]
CITY_MINUTES = dict(zip(CITIES, [6.0, 4.0, 2.0, 1.0, -1.0, 1.0, 0.0, -2.0]))
WEATHER = ["clear", "rain", "snow"]
WEATHER_P = [0.75, 0.20, 0.05]
WEATHER_MINUTES = {"clear": 0.0, "rain": 5.0, "snow": 12.0}


def _rng(spec: DemoSpec, stream: int, offset: int) -> np.random.Generator:
    return np.random.default_rng([spec.seed, stream, offset])


# ---------------------------------------------------------------- the pipeline


def tier2_seconds(spec: DemoSpec, offset: int) -> float:
    incident = inc.STAGE_SATURATION
    if incident.first_offset <= offset <= incident.last_offset:
        return SATURATED_TIER2_SECONDS[offset - incident.first_offset]
    return STAGES["feature_tier2"][1]


def simulate_pipeline(spec: DemoSpec, offset: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Run one day of traffic through the serial stages, five minutes at a time.

    Returns the stage telemetry rows and, per slot, the seconds a request waited in
    queues, which the predictions add to their time to decision.
    """
    rng = _rng(spec, 99, offset)
    arrivals = rng.poisson(LOAD_PROFILE * PIPELINE_REQUESTS_PER_DAY).astype(float)
    day_start = pd.Timestamp(spec.day(offset), tz="UTC")
    slot_starts = day_start + pd.to_timedelta(np.arange(SLOTS) * SLOT_SECONDS, unit="s")
    total_wait = np.zeros(SLOTS)
    frames = []
    upstream = arrivals
    for stage, (workers, seconds) in STAGES.items():
        if stage == "feature_tier2":
            seconds = tier2_seconds(spec, offset)
        capacity = workers * SLOT_SECONDS / seconds
        done, queue = np.zeros(SLOTS), np.zeros(SLOTS)
        backlog = 0.0
        for slot in range(SLOTS):  # a queue carries over from slot to slot
            waiting = backlog + upstream[slot]
            done[slot] = min(waiting, capacity)
            backlog = waiting - done[slot]
            queue[slot] = backlog
        wait = queue / (capacity / SLOT_SECONDS)
        total_wait += wait
        failure_rate = 0.0005 + (0.01 if stage == "feature_tier2" and seconds > 2 else 0.0)
        failures = rng.binomial(done.astype(int), failure_rate)
        dropped = rng.binomial(failures, 0.5)
        frames.append(pd.DataFrame({
            "stage": stage,
            "window_start": slot_starts,
            "window_seconds": SLOT_SECONDS,
            "records_in": np.round(upstream).astype(int),
            "records_out": np.round(done).astype(int) - dropped,
            "records_dropped": dropped,
            "busy_seconds": np.round(done * seconds * rng.uniform(0.97, 1.03, SLOTS), 3),
            "workers": workers,
            "queue_depth": np.round(queue).astype(int),
            "p95_latency_ms": np.round((seconds * 1.6 + wait) * 1000 * rng.uniform(0.95, 1.05, SLOTS), 1),
            "failure_mode": np.where(failures > 0, FAILURE_MODES[stage], None),
            "failures": pd.Series(failures, dtype="Int64").where(failures > 0),
        }))
        upstream = done
    return pd.concat(frames, ignore_index=True), total_wait


# ---------------------------------------------------------------- predictions


def _timing(rng: np.random.Generator, spec: DemoSpec, offset: int, n: int, wait: np.ndarray):
    """event_at and predicted_at: arrivals follow the load profile, plus queueing."""
    slot = rng.choice(SLOTS, size=n, p=LOAD_PROFILE)
    seconds = slot * SLOT_SECONDS + rng.uniform(0, SLOT_SECONDS, size=n)
    event_at = pd.Timestamp(spec.day(offset), tz="UTC") + pd.to_timedelta(seconds, unit="s")
    decision_s = rng.lognormal(np.log(15), 0.8, size=n) + wait[slot]
    predicted_at = event_at + pd.to_timedelta(decision_s, unit="s")
    return event_at.floor("ms"), predicted_at.floor("ms")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def card_fraud_day(spec: DemoSpec, offset: int, wait: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """One day of card_fraud predictions, and the true outcome of each (not logged)."""
    rng = _rng(spec, 1, offset)
    n = spec.fraud_per_day
    event_at, predicted_at = _timing(rng, spec, offset, n, wait)
    country = rng.choice(COUNTRIES, size=n, p=COUNTRY_P)
    device = rng.choice(DEVICES, size=n, p=DEVICE_P)
    merchant = rng.choice(MERCHANTS, size=n, p=MERCHANT_P).astype(object)
    merchant[rng.random(n) < 0.003] = "unknown"
    amount = np.round(rng.lognormal(3.5, 1.0, size=n), 2)
    age = np.minimum(np.floor(rng.exponential(900, size=n)), 20_000)
    session = rng.lognormal(4.0, 0.6, size=n)
    if offset >= inc.COVARIATE_DRIFT.first_offset:
        session = session * 1.6

    promo = None
    if inc.PROMOTION_SHIFT.covers(spec.day(offset), spec.start, spec.days):
        promo, merchant, amount, age = _promotion(spec, offset, merchant, amount, age)

    age_term = _age_term(age)
    z = _fraud_logit(amount, age, merchant, device, country)
    outcome = (rng.random(n) < _sigmoid(z)).astype(int)

    version = np.full(n, "1.4.0", dtype=object)
    if offset >= inc.RELEASE.first_offset:
        canary_share = 0.1 if offset < inc.RELEASE.first_offset + 2 else 1.0
        version[rng.random(n) < canary_share] = "1.5.0"
    estimate = z + rng.normal(0, MODEL_NOISE, size=n)
    if promo is not None:
        estimate, outcome = _promotion_outcomes(spec, offset, promo, z, estimate, outcome)
    if inc.FEATURE_OUTAGE.covers(spec.day(offset), spec.start, spec.days):
        outage = rng.random(n) < 0.35
        age = np.where(outage, -1, age)
        # Without the feature the model falls back to the average account.
        estimate = np.where(outage, estimate - age_term, estimate)
    degraded = (version == "1.5.0") & (country == "BR")
    estimate = np.where(degraded, 0.6 * z + rng.normal(-0.3, 1.1, size=n), estimate)
    score = np.round(_sigmoid(estimate), 4)

    frame = pd.DataFrame({
        "prediction_id": _ids("cf", spec.day(offset), n),
        "model_name": "card_fraud",
        "model_version": version,
        "event_at": event_at,
        "predicted_at": predicted_at,
        "score": score,
        "latency_ms": np.round(rng.lognormal(np.log(40), 0.45, size=n), 2),
        "cost_usd": np.where(rng.random(n) < 0.6, 0.0004, 0.0),
        "entity_id": "acct-" + pd.Series(rng.integers(0, 400_000, size=n)).astype(str),
        "amount_usd": amount,
        "merchant_category": merchant,
        "account_age_days": age,
        "device_type": device,
        "country": country,
        "session_length_s": np.round(session, 1),
    })
    return frame, outcome


# How far the model's logit strays from the true one (the model's error).
MODEL_NOISE = 0.8
PROMOTION_SHARE = 0.4


def _age_term(age: np.ndarray) -> np.ndarray:
    return -0.9 * (np.log1p(age) - 6.0)


def _fraud_logit(amount, age, merchant, device, country) -> np.ndarray:
    """The true log-odds of fraud given the features."""
    return (-3.4 + 0.6 * (np.log(amount) - 3.5) + _age_term(age)
            + pd.Series(merchant).map(MERCHANT_RISK).to_numpy()
            + pd.Series(device).map(DEVICE_RISK).to_numpy()
            + pd.Series(country).map(COUNTRY_RISK).to_numpy())


def _promotion(spec: DemoSpec, offset: int, merchant: np.ndarray, amount: np.ndarray, age: np.ndarray):
    """The promotion's payments replace a share of the day's: gaming, about $55, accounts about a
    year old. Drawn from a stream of their own, so the rest of the day is the same as without it."""
    rng = _rng(spec, 3, offset)
    n = len(merchant)
    promo = rng.random(n) < PROMOTION_SHARE
    merchant = np.where(promo, "gaming", merchant).astype(object)
    amount = np.where(promo, np.round(np.exp(rng.normal(4.0, 0.3, size=n)), 2), amount)
    age = np.where(promo, np.round(np.exp(rng.normal(np.log(365), 0.3, size=n))), age)
    return promo, merchant, amount, age


def _promotion_outcomes(spec: DemoSpec, offset: int, promo: np.ndarray, z: np.ndarray,
                        estimate: np.ndarray, outcome: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The promotion's payments are exactly as risky as the model's scores say, by the scores'
    calibration over the usual traffic: the odds of fraud given the score do not change (the
    covariate shift an estimate from the scores is built for). They sit in a narrow band of
    scores where fraud and honest payments overlap, which is what lowers ROC AUC."""
    rng = _rng(spec, 4, offset)
    logit = z + rng.normal(0, MODEL_NOISE, size=len(z))
    grid, odds = _score_calibration()
    fraud = (rng.random(len(z)) < np.interp(logit, grid, odds)).astype(int)
    return np.where(promo, logit, estimate), np.where(promo, fraud, outcome)


@functools.lru_cache(maxsize=1)
def _score_calibration() -> tuple[np.ndarray, np.ndarray]:
    """P(fraud | the model's logit) over the usual traffic (a fixed sample of a day without
    incidents): the mean true probability of the payments whose logit, plus the model's error,
    lands there."""
    frame, _ = card_fraud_day(DemoSpec(fraud_per_day=20_000), 0, np.zeros(SLOTS))
    z = _fraud_logit(frame["amount_usd"].to_numpy(), frame["account_age_days"].to_numpy(), frame["merchant_category"],
                     frame["device_type"], frame["country"])
    grid = np.linspace(-9.0, 5.0, 561)
    weights = np.exp(-0.5 * ((grid[:, None] - z[None, :]) / MODEL_NOISE) ** 2)
    return grid, (weights * _sigmoid(z)[None, :]).sum(axis=1) / weights.sum(axis=1)


def delivery_eta_day(spec: DemoSpec, offset: int, wait: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """One day of delivery_eta predictions (minutes), and the true delivery times."""
    rng = _rng(spec, 2, offset)
    n = spec.eta_per_day
    event_at, predicted_at = _timing(rng, spec, offset, n, wait)
    city = rng.choice(CITIES, size=n, p=CITY_P)
    weather = rng.choice(WEATHER, size=n, p=WEATHER_P)
    distance = np.round(rng.gamma(2.0, 3.0, size=n), 2)
    items = 1 + rng.poisson(2.0, size=n)
    hour = event_at.hour.to_numpy()
    rush = np.where(((hour >= 11) & (hour <= 13)) | ((hour >= 17) & (hour <= 20)), 8.0, 0.0)
    expected = (12 + 3.2 * distance + 1.5 * items + rush
                + pd.Series(weather).map(WEATHER_MINUTES).to_numpy()
                + pd.Series(city).map(CITY_MINUTES).to_numpy())
    actual = np.maximum(5.0, expected + rng.normal(0, 6.0, size=n))
    predicted = np.round(expected + rng.normal(0, 3.0, size=n), 2)
    frame = pd.DataFrame({
        "prediction_id": _ids("eta", spec.day(offset), n),
        "model_name": "delivery_eta",
        "model_version": "2026.07",
        "event_at": event_at,
        "predicted_at": predicted_at,
        "score": predicted,
        "latency_ms": np.round(rng.lognormal(np.log(25), 0.4, size=n), 2),
        "entity_id": "store-" + pd.Series(rng.integers(0, 5_000, size=n)).astype(str),
        "distance_km": distance,
        "items": items,
        "hour_of_day": hour,
        "weather": weather,
        "city": city,
    })
    return frame, np.round(actual, 2)


# ---------------------------------------------------------------- labels and costs


def card_fraud_labels(spec: DemoSpec, offset: int, frame: pd.DataFrame, outcome: np.ndarray) -> pd.DataFrame:
    """Chargebacks: 1–30 days late, 5% never; 0.3% corrected later."""
    rng = _rng(spec, 11, offset)
    n = len(frame)
    arrives = rng.random(n) >= 0.05
    delay_days = np.minimum(30.0, 1.0 + rng.gamma(1.5, 5.0, size=n))
    labels = pd.DataFrame({
        "prediction_id": frame["prediction_id"],
        "model_name": "card_fraud",
        "label": outcome.astype(str),
        "labeled_at": frame["predicted_at"] + pd.to_timedelta(delay_days, unit="D"),
        "weight": frame["amount_usd"],
    })[arrives]
    corrected = labels[rng.random(len(labels)) < 0.003].copy()
    corrected["label"] = np.where(corrected["label"] == "1", "0", "1")
    corrected["labeled_at"] = corrected["labeled_at"] + pd.to_timedelta(
        rng.uniform(1, 10, size=len(corrected)), unit="D")
    return pd.concat([labels, corrected], ignore_index=True)


def delivery_eta_labels(spec: DemoSpec, offset: int, frame: pd.DataFrame, actual: np.ndarray) -> pd.DataFrame:
    """Delivered-at times reach the warehouse 1–3 days later; 2% never."""
    rng = _rng(spec, 12, offset)
    n = len(frame)
    arrives = rng.random(n) >= 0.02
    delay_days = 1.0 + rng.integers(0, 3, size=n) + rng.uniform(0, 0.9, size=n)
    return pd.DataFrame({
        "prediction_id": frame["prediction_id"],
        "model_name": "delivery_eta",
        "label": pd.Series(actual).map("{:.2f}".format),
        "labeled_at": frame["predicted_at"] + pd.to_timedelta(delay_days, unit="D"),
    })[arrives].reset_index(drop=True)


def costs_day(spec: DemoSpec, offset: int, n_fraud: int, n_eta: int) -> pd.DataFrame:
    """Daily bills per model and component, proportional to traffic."""
    rng = _rng(spec, 21, offset)
    gpu_factor = 5.0 if inc.COST_SPIKE.covers(spec.day(offset), spec.start, spec.days) else 1.0
    rows = [
        ("card_fraud", "compute", 0.00085 * n_fraud),
        ("card_fraud", "storage", 0.0001 * n_fraud),
        ("delivery_eta", "compute", 0.00055 * n_eta),
        ("delivery_eta", "gpu", 0.0006 * n_eta * gpu_factor),
        ("delivery_eta", "storage", 0.0001 * n_eta),
    ]
    return pd.DataFrame(
        [(m, c, round(v * rng.uniform(0.95, 1.05), 4)) for m, c, v in rows],
        columns=["model_name", "component", "cost_usd"],
    )


# ---------------------------------------------------------------- writing
# DuckDB writes the files: it is an order of magnitude faster than pandas' CSV and
# JSON writers, and its gzip output carries no timestamp, so the bytes (and the
# files' fingerprints) are the same on every run.


class _Writer:
    """One in-memory DuckDB connection for all the files of a run (connecting costs ~20 ms)."""

    def __init__(self) -> None:
        self.con = duckdb.connect()

    def __call__(self, frame: pd.DataFrame, path: Path, options: str) -> None:
        self.con.register("frame", frame)
        self.con.execute(f"COPY frame TO '{path}' ({options})")
        self.con.unregister("frame")


def _ids(prefix: str, day: dt.date, n: int) -> pd.Series:
    return f"{prefix}-{day:%Y%m%d}-" + pd.Series(np.arange(n)).astype(str).str.zfill(6)


_NO_LABELS = pd.DataFrame(columns=["prediction_id", "model_name", "label", "labeled_at", "weight"])


def _partition(landing: Path, feed: str, day: dt.date) -> Path:
    path = landing / feed / f"dt={day.isoformat()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _by_day(frame: pd.DataFrame, column: str) -> dict[dt.date, pd.DataFrame]:
    days = frame[column].dt.date
    return {day: part.reset_index(drop=True) for day, part in frame.groupby(days, sort=True)}


def generate(landing: Path, spec: DemoSpec = DemoSpec(),
             progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Write the landing zone. Returns row counts per feed.

    Predictions land in the partition of their predicted_at date and labels in that of
    their labeled_at date; labels that would arrive after the last demo day are not
    written (they have not happened yet).
    """
    landing = Path(landing)
    write = _Writer()
    counts = {"predictions": 0, "labels": 0, "costs": 0, "stages": 0}
    carry: dict[str, list[pd.DataFrame]] = {"card_fraud": [], "delivery_eta": []}
    labels_due: dict[dt.date, list[pd.DataFrame]] = {}
    dirty = inc.dirty_rows(spec.fraud_per_day)
    for offset in range(spec.days):
        day = spec.day(offset)
        stages, wait = simulate_pipeline(spec, offset)
        write(stages, _partition(landing, "stages", day) / "stages.csv", "FORMAT csv, HEADER")
        counts["stages"] += len(stages)

        fraud, outcome = card_fraud_day(spec, offset, wait)
        eta, actual = delivery_eta_day(spec, offset, wait)
        for labels in (card_fraud_labels(spec, offset, fraud, outcome),
                       delivery_eta_labels(spec, offset, eta, actual)):
            for due, part in _by_day(labels, "labeled_at").items():
                labels_due.setdefault(due, []).append(part)
        write(costs_day(spec, offset, len(fraud), len(eta)),
               _partition(landing, "costs", day) / "costs.csv", "FORMAT csv, HEADER")
        counts["costs"] += 5

        # A request decided after midnight belongs to the next day's partition.
        for model, frame, name, options in (
            ("card_fraud", fraud, "card_fraud.parquet", "FORMAT parquet"),
            ("delivery_eta", eta, "delivery_eta.csv.gz", "FORMAT csv, HEADER, COMPRESSION gzip"),
        ):
            parts = _by_day(pd.concat([*carry[model], frame], ignore_index=True), "predicted_at")
            carry[model] = [part for d, part in parts.items() if d > day]
            if day in parts:
                today = _with_invalid_values(parts[day], offset) if model == "card_fraud" else parts[day]
                write(today, _partition(landing, "predictions", day) / name, options)
                counts["predictions"] += len(today)
                if model == "card_fraud":
                    counts["predictions"] += _write_dirty_predictions(landing, day, offset, dirty, today)

        labels_today = pd.concat(labels_due.pop(day, []) or [_NO_LABELS], ignore_index=True)
        labels_today = labels_today.sort_values(["model_name", "labeled_at", "prediction_id"])
        for model, part in labels_today.groupby("model_name", sort=True):
            folder = _partition(landing, "labels", day)
            if model == "card_fraud":
                write(part, folder / f"{model}.jsonl.gz", "FORMAT json, COMPRESSION gzip")
            else:
                write(part, folder / f"{model}.jsonl", "FORMAT json")
            counts["labels"] += len(part)
        for feed, written in _write_dirty_files(landing, day, offset, dirty, write).items():
            counts[feed] += written
        if progress:
            progress(offset + 1, spec.days)
    return counts


# ---------------------------------------------------------------- dirty data (incidents.dirty_rows)


def _with_invalid_values(frame: pd.DataFrame, offset: int) -> pd.DataFrame:
    """Feature values outside the contract that the model still decided on."""
    invalid = inc.INVALID_FEATURE_VALUES.get((offset, "merchant_category"))
    if not invalid:
        return frame
    frame = frame.copy()
    frame.loc[frame.index[:invalid], "merchant_category"] = "crypto"
    return frame


def _csv_text(frame: pd.DataFrame) -> str:
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.strftime("%Y-%m-%d %H:%M:%S.%f")
    return out.to_csv(index=False)


def _write_dirty_predictions(landing: Path, day: dt.date, offset: int, dirty: dict, today: pd.DataFrame) -> int:
    wanted = dirty.get(("predictions", offset))
    if not wanted:
        return 0
    fresh = today.iloc[100:100 + wanted["range:score"] + wanted["required:prediction_id"]
                       + wanted["range:time_to_decision_s"]].copy().reset_index(drop=True)
    fresh["prediction_id"] = [f"cf-retry-{day:%Y%m%d}-{i}" for i in range(len(fresh))]
    a = wanted["range:score"]
    b = a + wanted["required:prediction_id"]
    fresh.loc[: a - 1, "score"] = 1.37
    fresh.loc[a: b - 1, "prediction_id"] = None
    fresh.loc[b:, "event_at"] = fresh.loc[b:, "predicted_at"] + pd.Timedelta(minutes=2)
    copies = today.iloc[: wanted["duplicate:model_name/prediction_id"]]
    text = _csv_text(pd.concat([fresh, copies], ignore_index=True))
    text += "".join(f"cf-retry-broken-{i},card_fraud,1.4.0\n" for i in range(wanted["malformed:csv"]))
    (_partition(landing, "predictions", day) / "card_fraud_retry.csv").write_text(text)
    return len(fresh) + len(copies) + wanted["malformed:csv"]


def _write_dirty_files(landing: Path, day: dt.date, offset: int, dirty: dict, write: "_Writer") -> dict[str, int]:
    written: dict[str, int] = {}
    labels = dirty.get(("labels", offset))
    if labels:
        lines = [json.dumps({"prediction_id": f"cf-{day - dt.timedelta(days=4):%Y%m%d}-{i:06d}",
                             "model_name": "card_fraud", "label": "2",
                             "labeled_at": f"{day}T09:{i:02d}:00Z"}) for i in range(labels["in_set:label"])]
        lines += ['{"prediction_id": "cf-broken", "model_name": "card_fraud", "label": '] * labels["malformed:json"]
        (_partition(landing, "labels", day) / "card_fraud_manual.jsonl").write_text("\n".join(lines) + "\n")
        written["labels"] = len(lines)
    costs = dirty.get(("costs", offset))
    if costs:
        (_partition(landing, "costs", day) / "costs_correction.csv").write_text(
            "model_name,component,cost_usd\n" + "card_fraud,compute,12.5\n" * costs["duplicate:model_name/component"])
        written["costs"] = costs["duplicate:model_name/component"]
    stages = dirty.get(("stages", offset))
    if stages:
        rows = pd.DataFrame({
            "stage": "feature_tier3",
            "window_start": [f"{day} 0{i}:00:00+00" for i in range(stages["in_set:stage"])],
            "window_seconds": 300, "records_in": 10, "records_out": 10, "records_dropped": 0,
            "busy_seconds": 5.0, "workers": 1, "queue_depth": 0, "p95_latency_ms": 50.0,
            "failure_mode": None, "failures": None,
        })
        write(rows, _partition(landing, "stages", day) / "stages_extra.csv", "FORMAT csv, HEADER")
        written["stages"] = len(rows)
    return written
