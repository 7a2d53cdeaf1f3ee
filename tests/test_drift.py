"""Drift: every statistic against scipy on the same raw rows, the decision rules, the demo."""

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from mlwatch import nightly
from mlwatch.drift import compute, daily, reference
from tests.conftest import SMALL_DEMO
from tests.helpers import toy_config, write_partition

REF = [dt.date(2026, 3, d) for d in range(1, 11)]
CUR = [dt.date(2026, 3, d) for d in range(11, 16)]
RUN = CUR[-1]


def write_day(landing, day, rng, n=300):
    shifted = day >= CUR[0]
    x = rng.normal(1.5 if shifted else 0.0, 1.0, n)
    k = rng.integers(1, 6 if not shifted else 7, n)                      # discrete: 1..5, later 1..6
    c = rng.choice(["a", "b", "c", "z"] if shifted else ["a", "b", "c"], n,
                   p=[0.2, 0.2, 0.3, 0.3] if shifted else [0.5, 0.3, 0.2])
    score = 1 / (1 + np.exp(-(x + rng.normal(0, 1, n))))
    at = pd.Timestamp(day) + pd.to_timedelta(rng.uniform(60, 80_000, n), unit="s")
    frame = pd.DataFrame({"prediction_id": [f"d{day:%d}-{i}" for i in range(n)], "model_name": "toy",
                          "model_version": "v1", "event_at": at, "predicted_at": at, "score": np.round(score, 6),
                          "x": x, "k": k.astype(float), "c": c})
    write_partition(landing, "predictions", day, frame, "p.parquet")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("drift")

    def edit(data):
        data["models"]["toy"].update(
            windows=[1, 3], features={"x": {"type": "numeric"}, "k": {"type": "numeric"}, "c": {"type": "categorical"}},
            drift={"min_samples": 250})
    config = toy_config(folder, edit=edit)
    rng = np.random.default_rng(11)
    for day in REF + CUR:
        write_day(config.landing, day, rng)
    nightly.backfill(config, REF[0], RUN, backtest=False)
    return config


@pytest.fixture(scope="module")
def raw(built):
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        frame = con.execute("SELECT * FROM raw.predictions").df()
    frame["day"] = pd.to_datetime(frame["predicted_at"]).dt.date
    return frame


def stored(config, window, end, feature):
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        rows = con.execute("SELECT method, statistic, p_value, is_drifted, n_current, n_reference, impact "
                           "FROM marts.drift WHERE window_days = ? AND window_end = ? AND feature = ?",
                           [window, end, feature]).fetchall()
    return {r[0]: r[1:] for r in rows}


def samples(raw, column, window, end):
    ref = raw[raw["day"] <= REF[-1]][column].dropna()
    cur = raw[(raw["day"] > end - dt.timedelta(days=window)) & (raw["day"] <= end)][column].dropna()
    return ref.to_numpy(), cur.to_numpy()


def psi_reference(ref, cur, edges):
    r = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=len(edges) + 1).astype(float)
    c = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=len(edges) + 1).astype(float)
    r[r == 0], c[c == 0] = 0.5, 0.5
    r, c = r / r.sum(), c / c.sum()
    return float(np.sum((c - r) * np.log(c / r)))


@pytest.mark.parametrize("window, end", [(1, CUR[0]), (3, RUN), (3, REF[-1])])
def test_numeric_statistics_against_scipy(built, raw, window, end):
    ref, cur = samples(raw, "x", window, end)
    got = stored(built, window, end, "x")
    assert got["ks"][3:5] == (len(cur), len(ref))
    d = stats.ks_2samp(ref, cur, method="asymp").statistic
    # Binned on ~1000 reference quantiles: off by at most the largest bin's mass.
    assert abs(got["ks"][0] - d) <= 2 / 1000 + 1 / len(cur)
    en = np.round(len(ref) * len(cur) / (len(ref) + len(cur)))
    assert got["ks"][1] == pytest.approx(stats.kstwo.sf(got["ks"][0], en), rel=1e-9)
    w = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert got["wasserstein"][0] == pytest.approx(w, abs=0.01)
    edges = np.unique(np.quantile(ref, np.arange(1, 10) / 10))
    assert got["psi"][0] == pytest.approx(psi_reference(ref, cur, edges), rel=1e-9)


def test_a_few_distinct_values_make_ks_exact(built, raw):
    ref, cur = samples(raw, "k", 3, RUN)
    got = stored(built, 3, RUN, "k")
    assert got["ks"][0] == pytest.approx(stats.ks_2samp(ref, cur).statistic, abs=1e-12)


def test_categorical_statistics_against_scipy(built, raw):
    ref, cur = samples(raw, "c", 3, RUN)
    categories = sorted(set(ref))                                   # 'z' is new: it goes to '__other__'
    r = np.array([np.sum(ref == v) for v in categories] + [np.sum(~np.isin(ref, categories))])
    c = np.array([np.sum(cur == v) for v in categories] + [np.sum(~np.isin(cur, categories))])
    got = stored(built, 3, RUN, "c")
    table = np.vstack([r, c])
    table = table[:, table.sum(axis=0) > 0]
    expected = stats.chi2_contingency(table, correction=False)
    assert got["chi2"][0] == pytest.approx(expected.statistic, rel=1e-9)
    assert got["chi2"][1] == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert got["jensen_shannon"][0] == pytest.approx(distance.jensenshannon(r / r.sum(), c / c.sum(), base=2), rel=1e-9)
    rr, cc = np.where(r == 0, 0.5, r) / np.where(r == 0, 0.5, r).sum(), np.where(c == 0, 0.5, c) / np.where(c == 0, 0.5, c).sum()
    assert got["psi"][0] == pytest.approx(float(np.sum((cc - rr) * np.log(cc / rr))), rel=1e-9)


def test_benjamini_hochberg_across_the_models_tests_of_a_night(built):
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        rows = con.execute("SELECT p_value, p_value_adjusted FROM marts.drift WHERE window_end = ? "
                           "AND p_value IS NOT NULL ORDER BY window_days, feature, method", [RUN]).fetchall()
    assert len(rows) >= 6
    adjusted = stats.false_discovery_control([p for p, _ in rows], method="bh")
    assert [a for _, a in rows] == pytest.approx(list(adjusted), rel=1e-12)


def test_decisions_need_samples_a_rejected_test_and_a_large_effect(built):
    # The reference period against itself: no drift; the shifted days: drift in x, k and c.
    inside = stored(built, 3, REF[-1], "x")
    assert not any(v[2] for v in inside.values())
    after = stored(built, 3, RUN, "x")
    assert all(v[2] for v in after.values())
    assert stored(built, 3, RUN, "c")["chi2"][2] is True
    # One day holds 300 rows, over min_samples (250); the score shifts with x: impact 'score'
    # (no labels in this data set to judge performance).
    assert stored(built, 1, CUR[0], "x")["ks"][5] == "score"
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        thin = con.execute("SELECT count(*) FROM ops.drift_statistics WHERE n_current < 250 AND statistic IS NOT NULL"
                           ).fetchone()[0]
    assert thin == 0


def test_days_are_counted_once_and_the_reference_summarized_once(built, monkeypatch):
    counted, summarized = [], []
    monkeypatch.setattr(daily, "_count_day", lambda con, ref, day, fp: counted.append(day))
    monkeypatch.setattr(reference, "_summarize", lambda *a: summarized.append(a))
    from mlwatch.warehouse import connect_writer

    with connect_writer(built.warehouse) as con:
        compute.run(con, built, RUN, RUN)
    assert counted == [] and summarized == []


# ------------------------------------------------------------------ the demo


def drifted(config, model, window):
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        return con.execute("SELECT window_end, feature, bool_or(has_impact) FROM marts.drift WHERE model_name = ? "
                           "AND window_days = ? AND is_drifted GROUP BY ALL ORDER BY 1, 2", [model, window]).fetchall()


def test_demo_covariate_drift_is_flagged_from_its_first_window_and_has_no_impact(demo_warehouse):
    from mlwatch.demo import incidents as inc

    start = inc.COVARIATE_DRIFT.first_day()
    one_day = [(d, f) for d, f, _ in drifted(demo_warehouse, "card_fraud", 1) if f == "session_length_s"]
    assert one_day == [(start + dt.timedelta(days=i), "session_length_s") for i in range((SMALL_DEMO.end - start).days + 1)]
    week = {d for d, f, _ in drifted(demo_warehouse, "card_fraud", 7) if f == "session_length_s"}
    assert start + dt.timedelta(days=6) in week                        # its first full 7-day window
    assert not any(impact for _, f, impact in drifted(demo_warehouse, "card_fraud", 7) if f == "session_length_s")


def test_demo_stable_period_raises_no_drift(demo_warehouse):
    from mlwatch.demo import incidents as inc

    for window in (1, 7, 30):
        for end, feature, _ in drifted(demo_warehouse, "card_fraud", window):
            # Only the incidents drift: the promotion's payments and the scores they get, the
            # outage's defaults and the covariate drift.
            def during(incident):
                return incident.first_day() <= end <= incident.last_day() + dt.timedelta(days=window - 1)

            assert (feature in ("merchant_category", "amount_usd", "account_age_days", "__score__")
                    and during(inc.PROMOTION_SHIFT)) \
                or (feature == "account_age_days" and during(inc.FEATURE_OUTAGE)) \
                or (feature == "session_length_s" and end >= inc.COVARIATE_DRIFT.first_day()), (window, end, feature)
        assert drifted(demo_warehouse, "delivery_eta", window) == []


@pytest.mark.parametrize("values", [
    np.random.default_rng(7).normal(0, 1, 5_003),
    np.repeat([1.0, 2.0, 2.0, 5.0], 250),                         # ties: edges repeat, then collapse
    np.array([3.25]),                                             # one value
])
def test_reference_quantiles_equal_numpy_bit_for_bit(values):
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    frame = pd.DataFrame({"model_name": "m", "x": np.append(values, np.nan)})   # a NULL is not a value
    con.execute("CREATE TABLE raw.predictions AS SELECT model_name, CASE WHEN isnan(x) THEN NULL ELSE x END AS x "
                "FROM frame")
    probabilities = [k / reference.FINE_BINS for k in range(1, reference.FINE_BINS)]
    got = reference._quantiles(con, '"x"', "model_name = ?", ["m"], len(values), probabilities)
    assert got == np.quantile(values, probabilities).tolist()
