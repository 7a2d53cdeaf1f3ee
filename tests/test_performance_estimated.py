"""marts.performance_estimated against independent references on the same rows:
NannyML's CBPE (run from the bench's competitor environment), scikit-learn's isotonic
regression for the calibration, numpy for the score PSI, and the realized values of
marts.performance once the demo's windows have their labels."""

import datetime as dt
import importlib
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression

from mlwatch.config import load_config
from tests import reference_metrics as ref
from tests.conftest import SMALL_DEMO

BENCH = Path(__file__).resolve().parents[1] / "bench"
REFERENCE_END = dt.date(2026, 8, 21)     # card_fraud's reference period: 2026-08-01 .. 2026-08-21
# Windows after the reference, before and during the demo's incidents.
WINDOWS = [(7, dt.date(2026, 8, 24)), (7, dt.date(2026, 9, 7)), (7, dt.date(2026, 9, 14)),
           (7, dt.date(2026, 9, 28)), (30, dt.date(2026, 9, 28))]
# How far our estimate may be from NannyML's: the bars for ROC AUC and accuracy,
# 0.01 for the rest (the calibration is fitted on score bins of about 1% of the reference
# each, NannyML's on the rows).
TOLERANCE = {"roc_auc": 0.005, "accuracy": 0.01, "pr_auc": 0.01, "precision": 0.01, "recall": 0.01, "f1": 0.01}


@pytest.fixture(scope="module")
def fraud_rows(demo_warehouse):
    rows = ref.labeled_rows(demo_warehouse.warehouse, "card_fraud", SMALL_DEMO.end, 30)
    rows["y_pred"] = (rows["score"] >= 0.5).astype(int)
    return rows


def estimates(config, days, end, segment="__all__", value="__all__") -> dict[str, tuple]:
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        rows = con.execute(
            "SELECT metric, estimated_value, ci_low, ci_high, realized_value, n_predictions, is_reliable "
            "FROM marts.performance_estimated WHERE model_name = 'card_fraud' AND model_version = '__all__' "
            "AND window_days = ? AND window_end = ? AND segment = ? AND segment_value = ?",
            [days, end, segment, value]).fetchall()
    return {r[0]: r[1:] for r in rows}


@pytest.fixture(scope="module")
def nannyml(fraud_rows, tmp_path_factory):
    """NannyML's CBPE fitted on the reference's labeled rows, estimating each of WINDOWS
    (whole model, and country=US), as bench/cbpe_nannyml.py prints it."""
    sys.path.insert(0, str(BENCH))
    try:
        python = importlib.import_module("run").competitors_python()
    finally:
        sys.path.remove(str(BENCH))
    folder = tmp_path_factory.mktemp("cbpe")
    reference = ref.window(fraud_rows, REFERENCE_END, 21)
    reference = reference[reference["label"].notna()].assign(y_true=lambda f: f["label"].astype(int))
    reference[["score", "y_pred", "y_true"]].to_parquet(folder / "reference.parquet")
    parts = []
    for days, end in WINDOWS:
        part = ref.window(fraud_rows, end, days)
        parts.append(part.assign(window=f"{days}|{end}|__all__"))
        parts.append(part[part["country"] == "US"].assign(window=f"{days}|{end}|US"))
    pd.concat(parts)[["window", "score", "y_pred"]].to_parquet(folder / "windows.parquet")
    done = subprocess.run([str(python), str(BENCH / "cbpe_nannyml.py"), "estimate",
                           str(folder / "reference.parquet"), str(folder / "windows.parquet")],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_estimates_equal_nannyml_cbpe_on_the_same_rows(demo_warehouse, nannyml):
    compared = 0
    for key, theirs in nannyml["windows"].items():
        days, end, country = key.split("|")
        segment = ("__all__", "__all__") if country == "__all__" else ("country", country)
        ours = estimates(demo_warehouse, int(days), dt.date.fromisoformat(end), *segment)
        assert set(ours) == set(TOLERANCE), key
        for metric, tolerance in TOLERANCE.items():
            assert ours[metric][0] == pytest.approx(theirs[metric], abs=tolerance), (key, metric)
            compared += 1
    assert compared == len(WINDOWS) * 2 * len(TOLERANCE)


def test_the_calibration_is_scikit_learns_isotonic_regression_of_the_reference(demo_warehouse, fraud_rows):
    with duckdb.connect(str(demo_warehouse.warehouse), read_only=True) as con:
        bins = con.execute(
            "SELECT position, is_predicted_positive, first_fine_bin, last_fine_bin, n_labeled, n_pos, probability "
            "FROM intermediate.int_binary_calibration WHERE model_name = 'card_fraud' AND calibration_slice = ? "
            "ORDER BY position", [REFERENCE_END]).df()
    # The bins hold the reference's labeled rows, counted independently from the raw rows.
    reference = ref.window(fraud_rows, REFERENCE_END, 21)
    reference = reference[reference["label"].notna()]
    fine = np.minimum(np.floor(reference["score"].to_numpy() * 10_000), 9_999)
    for row in bins.itertuples():
        inside = (fine >= row.first_fine_bin) & (fine <= row.last_fine_bin) & \
                 (reference["y_pred"].to_numpy() == row.is_predicted_positive)
        assert inside.sum() == row.n_labeled
        assert (reference["label"].to_numpy()[inside].astype(int) == 1).sum() == row.n_pos
    assert bins["n_labeled"].sum() == len(reference)
    assert bins.groupby("is_predicted_positive").size().max() <= 100
    rate = bins["n_pos"] / bins["n_labeled"]
    fitted = IsotonicRegression().fit(bins["position"], rate, sample_weight=bins["n_labeled"])
    np.testing.assert_allclose(bins["probability"], fitted.predict(bins["position"]), atol=1e-12)


def test_realized_values_fall_within_the_estimates_intervals_once_labels_are_in(demo_warehouse):
    """The demo's windows whose labels are all in (from the reference's end to before its
    release) are stable: the realized value lies inside the estimate's interval, and the
    reference's own estimate reproduces its realized value."""
    with duckdb.connect(str(demo_warehouse.warehouse), read_only=True) as con:
        rows = con.execute(
            "SELECT window_end, window_days, metric, estimated_value, ci_low, ci_high, realized_value, "
            "reference_estimated_value, reference_value, is_reliable FROM marts.performance_estimated "
            "WHERE model_name = 'card_fraud' AND model_version = '__all__' AND segment = '__all__' "
            "AND window_days IN (7, 30) AND realized_value IS NOT NULL").df()
    assert len(rows) == 2 * 6 * len(pd.date_range(REFERENCE_END, SMALL_DEMO.end - dt.timedelta(days=30)))
    assert rows["is_reliable"].all()
    inside = (rows["realized_value"] >= rows["ci_low"]) & (rows["realized_value"] <= rows["ci_high"])
    assert inside.groupby(rows["metric"]).mean().min() >= 0.9
    month = rows[rows["window_days"] == 30]
    error = (month["realized_value"] - month["estimated_value"]).abs().groupby(month["metric"]).mean()
    assert error["roc_auc"] < 0.005 and error["accuracy"] < 0.002
    # The whole reference, estimated from its scores as a window is.
    reference = (rows["reference_estimated_value"] - rows["reference_value"]).abs().groupby(rows["metric"]).max()
    assert reference["roc_auc"] < 0.005 and reference["accuracy"] < 0.002


def test_realized_value_waits_for_the_label_horizon(demo_warehouse):
    with duckdb.connect(str(demo_warehouse.warehouse), read_only=True) as con:
        ends = con.execute(
            "SELECT window_end, count(realized_value) > 0 FROM marts.performance_estimated "
            "WHERE model_name = 'card_fraud' AND segment = '__all__' AND model_version = '__all__' "
            "GROUP BY window_end").fetchall()
    last_realized = SMALL_DEMO.end - dt.timedelta(days=30)
    assert ends and all(has == (end <= last_realized) for end, has in ends)


def test_score_psi_is_the_population_stability_of_the_reference_tenths(demo_warehouse, fraud_rows):
    """The estimate is trusted while the window's scores stay where the reference
    calibrated them: score_psi, recomputed with numpy over the same tenths of the reference."""
    with duckdb.connect(str(demo_warehouse.warehouse), read_only=True) as con:
        bins = con.execute(
            "SELECT is_predicted_positive, first_fine_bin, last_fine_bin, psi_group, psi_group_share "
            "FROM intermediate.int_binary_calibration WHERE model_name = 'card_fraud' AND calibration_slice = ? "
            "ORDER BY position", [REFERENCE_END]).df()
        (stored_psi,) = con.execute(
            "SELECT score_psi FROM marts.performance_estimated WHERE model_name = 'card_fraud' "
            "AND model_version = '__all__' AND segment = '__all__' AND window_days = 7 AND window_end = ? "
            "AND metric = 'accuracy'", [dt.date(2026, 9, 14)]).fetchone()
    window = ref.window(fraud_rows, dt.date(2026, 9, 14), 7)
    fine = np.minimum(np.floor(window["score"].to_numpy() * 10_000), 9_999)
    side = window["y_pred"].to_numpy()
    # A score takes the bin of its side that starts at or below it (the first bin below them all).
    group = np.empty(len(window))
    for positive in (0, 1):
        own = bins[bins["is_predicted_positive"] == positive].sort_values("first_fine_bin")
        at = np.searchsorted(own["first_fine_bin"].to_numpy(), fine[side == positive], side="right") - 1
        group[side == positive] = own["psi_group"].to_numpy()[np.maximum(at, 0)]
    shares = bins.groupby("psi_group")["psi_group_share"].first()
    counts = pd.Series(group).value_counts()
    observed = np.array([counts.get(g, 0) for g in shares.index]) / len(window)
    expected = shares.to_numpy()
    psi = np.sum((observed - expected) * np.log(np.maximum(observed, 1e-4) / expected))
    assert stored_psi == pytest.approx(psi, abs=1e-9)
    assert 0 <= psi < 0.25


def test_the_report_draws_the_estimate_beside_the_realized_metric_and_says_where_there_is_none(demo_warehouse):
    from mlwatch.report import charts
    from mlwatch.report import data as report_data

    with duckdb.connect(str(demo_warehouse.warehouse), read_only=True) as con:
        loaded = report_data.load(con, demo_warehouse, SMALL_DEMO.end)
    figures = {m.name: charts.performance_over_time(m) for m in loaded.models}
    fraud = figures["card_fraud"]
    [estimate] = [t for t in fraud.data if t.name == "estimated from scores"]
    assert estimate.line.dash == "dash" and len(estimate.x) == len(loaded.models[0].estimated)
    # The last nights have an estimate where the labels are still few: the hover says how many.
    assert "labeled so far" in estimate.hovertemplate
    assert fraud.layout.title.text.endswith("dashed: estimated from the scores, before labels")
    assert figures["delivery_eta"].layout.title.text.endswith("(regression: not estimated before labels)")
    assert not any(t.name == "estimated from scores" for t in figures["delivery_eta"].data)


def test_an_estimate_of_a_version_the_reference_never_saw_is_marked_unreliable(demo_warehouse):
    """card_fraud 1.5.0 serves from 2026-08-31 (canary) on: the calibration is 1.4.0's."""
    with duckdb.connect(str(demo_warehouse.warehouse), read_only=True) as con:
        rows = con.execute(
            "SELECT model_version, window_end, is_reliable, unreliable_reason FROM marts.performance_estimated "
            "WHERE model_name = 'card_fraud' AND segment = '__all__' AND window_days = 7 AND metric = 'roc_auc'").df()
    rows["window_end"] = pd.to_datetime(rows["window_end"]).dt.date
    new = rows[rows["model_version"] == "1.5.0"]
    assert len(new) and not new["is_reliable"].any()
    assert new["unreliable_reason"].str.contains("model versions that did not serve in the reference period").all()
    after_rollout = rows[(rows["model_version"] == "__all__") & (rows["window_end"] >= dt.date(2026, 9, 2))]
    assert len(after_rollout) and not after_rollout["is_reliable"].any()
    before = rows[(rows["model_version"] == "__all__") & (rows["window_end"] < dt.date(2026, 8, 31))]
    assert len(before) and before["is_reliable"].all()
