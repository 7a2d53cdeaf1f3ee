"""Multiclass models: accuracy, macro F1 and log loss against scikit-learn, per segment,
with a segment of a handful of rows and an empty window."""

import datetime as dt
import json

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn import metrics as skm

from mlwatch import nightly
from mlwatch.config import load_config
from tests import reference_metrics as ref
from tests.helpers import write_partition

CLASSES = ["a", "b", "c"]
DAYS = [dt.date(2026, 3, d) for d in (1, 2, 3, 5, 6)]     # no predictions on 03-04
RUN = dt.date(2026, 3, 7)


def write_day(landing, day, rng):
    sizes = {"north": 300, "south": 120, "tiny": 5}
    region = np.repeat(list(sizes), list(sizes.values()))
    n = len(region)
    truth = rng.choice(CLASSES, size=n, p=[0.5, 0.3, 0.2])
    logits = rng.normal(0, 1, size=(n, 3)) + 1.5 * (truth[:, None] == np.array(CLASSES))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    proba = np.round(proba, 6)
    proba[:, 2] = 1 - proba[:, 0] - proba[:, 1]
    predicted = np.array(CLASSES)[proba.argmax(axis=1)]
    at = pd.Timestamp(day) + pd.to_timedelta(rng.uniform(0, 80_000, n), unit="s")
    ids = [f"t-{day:%m%d}-{i}" for i in range(n)]
    predictions = pd.DataFrame({
        "prediction_id": ids, "model_name": "triage", "model_version": "m1",
        "event_at": at - pd.Timedelta(seconds=2), "predicted_at": at,
        "score": proba.max(axis=1), "predicted_label": predicted, "region": region,
        "class_probabilities": [json.dumps(dict(zip(CLASSES, p))) for p in proba.tolist()],
    })
    labeled = rng.random(n) < 0.9
    labels = pd.DataFrame({"prediction_id": ids, "model_name": "triage", "label": truth,
                           "labeled_at": pd.Timestamp(day + dt.timedelta(days=1)) + pd.Timedelta(hours=3)})[labeled]
    write_partition(landing, "predictions", day, predictions, "triage.parquet")
    write_partition(landing, "labels", day + dt.timedelta(days=1), labels, "triage.jsonl")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multiclass")
    config = {
        "landing": str(folder / "landing"), "warehouse": str(folder / "w.duckdb"), "reports": str(folder / "reports"),
        "models": {"triage": {
            "task": "multiclass_classification", "label_delay_days": 5,
            "reference": {"start": "2026-03-01", "end": "2026-03-03"}, "windows": [1, 3],
            "segments": ["region"], "segment_top_k": 3, "min_labeled_rows": 30,
            "slos": {"performance": {"metric": "macro_f1", "min_labeled": 30}},
        }},
    }
    (folder / "mlwatch.yml").write_text(yaml.safe_dump(config))
    rng = np.random.default_rng(3)
    for day in DAYS:
        write_day(folder / "landing", day, rng)
    cfg = load_config(folder / "mlwatch.yml")
    nightly.backfill(cfg, DAYS[0], RUN, backtest=False)
    return cfg


@pytest.fixture(scope="module")
def rows(built):
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        predictions = con.execute("SELECT * FROM raw.predictions").df()
        labels = con.execute("SELECT prediction_id, label FROM raw.labels").df()
    predictions["day"] = pd.to_datetime(predictions["predicted_at"]).dt.date
    return predictions.merge(labels, on="prediction_id", how="left")


def expected(rows):
    labeled = rows.dropna(subset=["label"])
    y, predicted = labeled["label"].to_numpy(), labeled["predicted_label"].to_numpy()
    proba = np.array([[json.loads(p)[c] for c in CLASSES] for p in labeled["class_probabilities"]])
    correct = int((y == predicted).sum())
    accuracy = (skm.accuracy_score(y, predicted), *ref.wilson(correct, len(y)))
    macro = skm.f1_score(y, predicted, average="macro")
    present = sorted(set(y) | set(predicted))
    variance = 0.0
    for c in present:
        tp = int(((y == c) & (predicted == c)).sum())
        fp = int(((y != c) & (predicted == c)).sum())
        fn = int(((y == c) & (predicted != c)).sum())
        f1 = 2 * tp / (2 * tp + fp + fn)
        variance += f1 * (1 - f1) / (tp + (fp + fn) / 2)
    half = ref.Z * np.sqrt(variance / len(present) ** 2)
    losses = -np.log(np.clip(proba[np.arange(len(y)), [CLASSES.index(v) for v in y]], np.finfo(float).eps, None))
    return {"accuracy": accuracy, "macro_f1": (macro, max(0, macro - half), min(1, macro + half)),
            "log_loss": (skm.log_loss(y, proba, labels=CLASSES), *ref.mean_interval(losses))}


def stored(config, days, end, segment="__all__", value="__all__"):
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        return {r[0]: r[1:] for r in con.execute(
            "SELECT metric, value, ci_low, ci_high, n_labeled FROM marts.performance WHERE model_name = 'triage' "
            "AND model_version = 'm1' AND window_days = ? AND window_end = ? AND segment = ? AND segment_value = ?",
            [days, end, segment, value]).fetchall()}


@pytest.mark.parametrize("days, end, region", [(3, dt.date(2026, 3, 3), None), (1, dt.date(2026, 3, 5), "north"),
                                               (3, dt.date(2026, 3, 6), "south")])
def test_multiclass_metrics_equal_scikit_learn(built, rows, days, end, region):
    part = ref.window(rows, end, days)
    if region:
        part = part[part["region"] == region]
    actual = stored(built, days, end, "region" if region else "__all__", region or "__all__")
    for metric, (value, low, high) in expected(part).items():
        assert actual[metric][0] == pytest.approx(value, rel=1e-9), metric
        assert actual[metric][1] == pytest.approx(low, rel=1e-9), metric
        assert actual[metric][2] == pytest.approx(high, rel=1e-9), metric


def test_a_segment_of_a_handful_of_rows_gets_null(built, rows):
    actual = stored(built, 3, dt.date(2026, 3, 3), "region", "tiny")
    labeled = ref.window(rows, dt.date(2026, 3, 3), 3)
    assert 0 < actual["accuracy"][3] == labeled[labeled["region"] == "tiny"]["label"].notna().sum() < 30
    assert all(v[:3] == (None, None, None) for v in actual.values())


def test_an_empty_window_has_no_rows_and_the_longer_window_spans_the_gap(built):
    assert stored(built, 1, dt.date(2026, 3, 4)) == {}
    assert stored(built, 3, dt.date(2026, 3, 4))["accuracy"][0] is not None
