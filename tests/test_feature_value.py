"""Feature value: importance from the logged data (η² of the score on the feature), checked
against scikit-learn's R² of a one-hot regression on the same rows, and the prune list."""

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from mlwatch.feature_value import correlation_ratio
from tests.conftest import SMALL_DEMO


def one_hot_r2(bins: np.ndarray, score: np.ndarray) -> float:
    design = pd.get_dummies(pd.Series(bins).astype(str)).to_numpy(dtype=float)
    return LinearRegression().fit(design, score).score(design, score)


@pytest.mark.parametrize("effect", [0.0, 0.3, 2.0])
def test_correlation_ratio_is_the_r2_of_a_one_hot_regression(effect):
    rng = np.random.default_rng(7)
    bins = rng.integers(0, 6, 5000)
    score = rng.normal(size=5000) + effect * np.sin(bins)
    counts = np.bincount(bins, minlength=6)
    sums = np.bincount(bins, weights=score, minlength=6)
    ours = correlation_ratio(counts, sums, len(score), score.sum(), np.sum(score ** 2))
    assert ours == pytest.approx(one_hot_r2(bins, score), abs=1e-9)


def test_a_constant_score_has_no_importance():
    assert correlation_ratio(np.array([3, 2]), np.array([1.5, 1.0]), 5, 2.5, 1.25) is None


def test_demo_importance_matches_scikit_learn_and_prunes_what_the_model_ignores(demo_warehouse):
    end = SMALL_DEMO.end
    model = demo_warehouse.models["card_fraud"]
    window = model.alert_window_days
    with duckdb.connect(str(demo_warehouse.warehouse), read_only=True) as con:
        value = {r[0]: r[1:] for r in con.execute(
            "SELECT feature, importance, prune, cost_per_prediction FROM marts.feature_value "
            "WHERE model_name = 'card_fraud' AND window_end = ?", [end]).fetchall()}
        # The reference check reads the window's rows (a test may; mlwatch never does).
        rows = con.execute(
            "SELECT merchant_category, score FROM raw.predictions WHERE model_name = 'card_fraud' "
            "AND _partition_date BETWEEN ? AND ? AND score IS NOT NULL",
            [end - dt.timedelta(days=window - 1), end]).df()
    assert set(value) == set(model.features)
    categories = model.features["merchant_category"].values
    bins = np.where(rows["merchant_category"].isin(categories), rows["merchant_category"], "__other__")
    assert value["merchant_category"][0] == pytest.approx(one_hot_r2(bins, rows["score"].to_numpy()), abs=1e-9)
    # The model leans on account age and ignores the session length it pays a lookup for.
    assert value["account_age_days"][0] > 0.1 and value["account_age_days"][1] is False
    assert value["session_length_s"][0] < 0.01 and value["session_length_s"][1] is True
