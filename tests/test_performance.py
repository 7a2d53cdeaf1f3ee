"""marts.performance against scikit-learn and scipy on the same rows."""

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

from mlwatch import nightly
from tests import reference_metrics as ref
from tests.conftest import SMALL_DEMO, TOP_COUNTRIES
from tests.helpers import toy_config, write_partition, write_toy_day

RUN_DATE = SMALL_DEMO.end


@pytest.fixture(scope="module")
def built(demo_warehouse):
    return demo_warehouse


@pytest.fixture(scope="module")
def fraud_rows(built):
    return ref.labeled_rows(built.warehouse, "card_fraud", RUN_DATE, 30)


@pytest.fixture(scope="module")
def eta_rows(built):
    return ref.labeled_rows(built.warehouse, "delivery_eta", RUN_DATE, 7)


def stored(config, model, version, days, end, segment="__all__", value="__all__"):
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        rows = con.execute(
            "SELECT metric, value, ci_low, ci_high, n_predictions, n_labeled, label_coverage, reference_value, "
            "ranking_method, ranking_error_bound "
            "FROM marts.performance WHERE model_name = ? AND model_version = ? AND window_days = ? "
            "AND window_end = ? AND segment = ? AND segment_value = ?",
            [model, version, days, end, segment, value]).fetchall()
    return {r[0]: r[1:] for r in rows}


def top_values(rows, column, start, end, k):
    """The k most frequent values of a column over [start, end] (ties by value), independently."""
    part = rows[(rows["day"] >= start) & (rows["day"] <= end)]
    counts = part[column].value_counts()
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [value for value, _ in ranked[:k]]


def compare(actual, expected):
    assert set(actual) == set(expected)
    for metric, triple in expected.items():
        assert_metric(actual[metric], triple, metric)


def assert_metric(got, expected, metric, binned=None):
    """A stored row (value, ci_low, ci_high, ..., ranking_method, ranking_error_bound) against
    scikit-learn's (value, ci_low, ci_high) on the exact scores: equal for exact rows; for
    binned ROC AUC and PR AUC rows, within the stated bound, which is under a tenth of the
    interval's half-width, and inside the stored (widened) interval. `binned`, when given,
    is {bins: {metric: value}} of scikit-learn on the binned scores (ref.binned_ranking):
    a binned row must equal one of them; the number of bins it used is returned."""
    value, low, high = expected
    method, bound = got[7], got[8]
    if metric not in ("roc_auc", "pr_auc"):
        assert method is None and bound is None, metric
    if method == "binned":
        assert abs(got[0] - value) <= bound + 1e-12, f"{metric}: {got[0]} vs exact {value}, bound {bound}"
        assert bound <= 0.1 * (high - low) / 2 * 1.001, f"{metric}: bound {bound} vs half-width {(high - low) / 2}"
        assert got[1] <= value <= got[2], f"{metric}: exact {value} outside [{got[1]}, {got[2]}]"
        if binned is not None:
            used = [bins for bins, values in binned.items() if got[0] == pytest.approx(values[metric], rel=1e-9)]
            assert used, f"{metric}: {got[0]} is none of the binned values {binned}"
            return used[0]
        return None
    assert method in (None, "exact") and bound in (None, 0), metric
    assert_close(got[0], value, f"{metric} value")
    assert_close(got[1], low, f"{metric} ci_low")
    assert_close(got[2], high, f"{metric} ci_high")


def assert_close(actual, expected, what):
    assert actual == pytest.approx(expected, rel=1e-9, abs=1e-12), what


@pytest.mark.parametrize("version, days, end", [
    ("__all__", 7, dt.date(2026, 8, 20)),       # labels complete
    ("1.5.0", 1, dt.date(2026, 8, 31)),         # canary day: a small slice of traffic
    ("1.5.0", 30, dt.date(2026, 9, 29)),        # recent: most labels not in yet
    ("__all__", 1, dt.date(2026, 9, 11)),       # feature outage day
])
def test_binary_metrics_equal_scikit_learn(built, fraud_rows, version, days, end):
    rows = ref.window(fraud_rows, end, days, version)
    expected = ref.binary(rows, weight_column="amount_usd")
    actual = stored(built, "card_fraud", version, days, end)
    assert set(actual) == set(expected)
    binned = {bins: ref.binned_ranking(rows, bins) for bins in (2_500, 10_000)}
    for metric, triple in expected.items():
        got = actual[metric]
        assert_metric(got, triple, metric, binned)
        assert got[3] == len(rows) and got[4] == rows["label"].notna().sum()
        assert_close(got[5], rows["label"].notna().mean(), "label_coverage")


@pytest.mark.parametrize("days, end", [(30, dt.date(2026, 9, 29)), (1, dt.date(2026, 9, 1)), (7, dt.date(2026, 8, 7))])
def test_regression_metrics_equal_scikit_learn(built, eta_rows, days, end):
    rows = ref.window(eta_rows, end, days)
    expected = ref.regression(rows)
    actual = stored(built, "delivery_eta", "__all__", days, end)
    assert set(actual) == {"mae", "rmse", "mape", "r2"}
    for metric, (value, low, high) in expected.items():
        assert_metric(actual[metric], (value, low, high), metric)


@pytest.mark.parametrize("version, days, end, country", [
    ("1.5.0", 7, dt.date(2026, 9, 12), "BR"),       # the degraded segment of the new version
    ("__all__", 30, dt.date(2026, 9, 29), "US"),
    ("__all__", 7, dt.date(2026, 8, 14), "__other__"),
])
def test_segment_metrics_equal_scikit_learn(built, fraud_rows, version, days, end, country):
    top = top_values(fraud_rows, "country", dt.date(2026, 8, 1), min(end, dt.date(2026, 8, 21)), TOP_COUNTRIES)
    rows = ref.window(fraud_rows, end, days, version)
    rows = rows[~rows["country"].isin(top)] if country == "__other__" else rows[rows["country"] == country]
    assert len(rows) > 0
    reference_rows = ref.window(fraud_rows, min(end, dt.date(2026, 8, 21)), (min(end, dt.date(2026, 8, 21)) - dt.date(2026, 8, 1)).days + 1)
    reference_rows = (reference_rows[~reference_rows["country"].isin(top)] if country == "__other__"
                      else reference_rows[reference_rows["country"] == country])
    actual = stored(built, "card_fraud", version, days, end, "country", country)
    compare(actual, ref.binary(rows, weight_column="amount_usd"))
    assert_close(actual["roc_auc"][6], ref.binary(reference_rows, weight_column="amount_usd")["roc_auc"][0], "reference")


def test_regression_segment_metrics_equal_scikit_learn(built, eta_rows):
    rows = ref.window(eta_rows, dt.date(2026, 9, 20), 7)
    compare(stored(built, "delivery_eta", "__all__", 7, dt.date(2026, 9, 20), "city", "SEA"),
            ref.regression(rows[rows["city"] == "SEA"]))


def test_segment_buckets_are_the_top_values_and_other(built, fraud_rows):
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        values = {r[0] for r in con.execute(
            "SELECT DISTINCT segment_value FROM marts.performance WHERE model_name = 'card_fraud' "
            "AND segment = 'country' AND window_end = DATE '2026-09-20'").fetchall()}
    top = top_values(fraud_rows, "country", dt.date(2026, 8, 1), dt.date(2026, 8, 21), TOP_COUNTRIES)
    assert values == set(top) | {"__other__"}


def test_the_degraded_segment_of_the_new_version_is_visible(built):
    """The demo's release incident: in BR, 1.5.0's interval lies below the reference."""
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        rows = con.execute(
            "SELECT window_end, segment_value, ci_high < reference_value FROM marts.performance "
            "WHERE model_name = 'card_fraud' AND model_version = '1.5.0' AND metric = 'roc_auc' AND window_days = 30 "
            "AND segment = 'country' AND window_end IN (DATE '2026-09-20', DATE '2026-09-29') ORDER BY 1, 2").fetchall()
    below = {(day, value) for day, value, is_below in rows if is_below}
    assert below == {(dt.date(2026, 9, 20), "BR"), (dt.date(2026, 9, 29), "BR")}


def test_reference_value_is_the_reference_period_known_by_the_window_end(built, fraud_rows, eta_rows):
    full = ref.binary(ref.window(fraud_rows, dt.date(2026, 8, 21), 21), weight_column="amount_usd")
    after = stored(built, "card_fraud", "1.5.0", 7, dt.date(2026, 9, 10))
    assert_close(after["roc_auc"][6], full["roc_auc"][0], "reference after the period")
    partial = ref.binary(ref.window(fraud_rows, dt.date(2026, 8, 10), 10), weight_column="amount_usd")
    inside = stored(built, "card_fraud", "__all__", 1, dt.date(2026, 8, 10))
    assert_close(inside["pr_auc"][6], partial["pr_auc"][0], "reference inside the period")
    eta_reference = ref.regression(ref.window(eta_rows, dt.date(2026, 8, 21), 21))
    assert_close(stored(built, "delivery_eta", "__all__", 7, dt.date(2026, 9, 20))["mae"][6],
                 eta_reference["mae"][0], "regression reference")


def test_no_labels_yet_give_null_not_noise(built):
    # Labels arrive a day or more after the prediction: the last day has none yet.
    actual = stored(built, "card_fraud", "__all__", 1, RUN_DATE)
    assert actual["roc_auc"][4] == 0 and actual["roc_auc"][5] == 0
    assert all(actual[m][:3] == (None, None, None) for m in actual if m != "positive_rate")
    assert actual["positive_rate"][0] is not None  # needs no label


def test_a_handful_of_labeled_rows_give_null(tmp_path):
    config = toy_config(tmp_path)  # min_labeled_rows: 30
    for offset in range(3):
        write_toy_day(config.landing, dt.date(2026, 3, 1) + dt.timedelta(days=offset), n=20)
    nightly.backfill(config, dt.date(2026, 3, 1), dt.date(2026, 3, 4), backtest=False)
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        rows = dict(con.execute(
            "SELECT window_days, (value, n_labeled) FROM marts.performance WHERE metric = 'roc_auc' "
            "AND window_end = DATE '2026-03-03' AND model_version = 'v1'").fetchall())
    assert rows[1] == (None, 20)          # one day: 20 labeled rows, too few
    assert rows[3][0] is not None and rows[3][1] == 60


def test_windows_exist_for_every_day_with_data_and_none_before(built):
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        ends = con.execute("SELECT min(window_end), max(window_end), count(DISTINCT window_end) "
                           "FROM marts.performance").fetchone()
        duplicates = con.execute(
            "SELECT count(*) FROM (SELECT model_name, model_version, window_days, window_end, segment, segment_value, "
            "metric FROM marts.performance GROUP BY ALL HAVING count(*) > 1)").fetchone()[0]
    assert ends == (SMALL_DEMO.start, RUN_DATE, SMALL_DEMO.days)
    assert duplicates == 0


def test_the_mart_is_the_same_on_one_core_and_on_many(built):
    """marts.performance runs on every core (use_all_cores): its floating-point sums are
    exact fixed-point decimals, so the numbers must not depend on the thread count. The
    demo's predictions span more than one DuckDB row group, so the threads split the work."""
    compiled = (built.warehouse.parent / "dbt" / "target" / "compiled" / "mlwatch" / "models"
                / "marts" / "performance.sql").read_text()
    results = []
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM raw.predictions").fetchone()[0]
        assert rows > 122_880, "too few rows for the threads to split the work"
        for threads in (1, 4, 4):
            con.execute(f"SET threads = {threads}")
            results.append(con.execute(f"SELECT * FROM ({compiled}) ORDER BY ALL").fetchall())
    assert len(results[0]) > 100
    assert results[1] == results[0]
    assert results[2] == results[0]
    assert {row[0] for row in results[0]} >= {"card_fraud", "delivery_eta"}


def test_binned_ranking_is_the_auc_of_binned_scores_and_its_interval_holds_the_exact_one(tmp_path):
    """ranking_bins: ROC AUC and PR AUC are scikit-learn's on the binned scores; the other
    metrics use the exact scores; ROC AUC's interval spans the binning's margin, which
    contains the exact AUC."""
    bins = 100

    def edit(data):
        data["models"]["toy"]["ranking_bins"] = bins
    config = toy_config(tmp_path, edit=edit)
    days = [dt.date(2026, 3, 1) + dt.timedelta(days=offset) for offset in range(4)]
    for day in days:  # scores that do not separate the classes: AUC and AP inside (0, 1)
        write_toy_day(config.landing, day, n=600, degraded=True)
    run_date = days[-1] + dt.timedelta(days=2)
    nightly.backfill(config, days[0], run_date, backtest=False)
    rows = ref.labeled_rows(config.warehouse, "toy", run_date, 5)
    part = ref.window(rows, days[-1], 3).assign(weight=1.0)  # the toy's labels carry no weight
    expected = ref.binary(part)
    binned = part.assign(score=(part["score"] * bins).floordiv(1).clip(upper=bins - 1) / bins)
    expected_binned = ref.binary(binned)
    actual = stored(config, "toy", "__all__", 3, days[-1])

    labeled = binned.dropna(subset=["label"])
    assert labeled["score"].nunique() < part.dropna(subset=["label"])["score"].nunique()  # bins merged scores
    for metric in ("roc_auc", "pr_auc"):
        assert_close(actual[metric][0], expected_binned[metric][0], f"{metric} value")
    assert actual["roc_auc"][0] != pytest.approx(expected["roc_auc"][0], rel=1e-9)
    for metric in ("accuracy", "log_loss", "brier", "precision", "recall"):
        compare({metric: actual[metric]}, {metric: expected[metric]})

    y = (labeled["label"] == "1").to_numpy()
    positives = labeled[y]["score"].value_counts()
    negatives = labeled[~y]["score"].value_counts()
    margin = (positives * negatives.reindex(positives.index, fill_value=0)).sum() / (2 * y.sum() * (~y).sum())
    delong = expected_binned["roc_auc"][0] - expected_binned["roc_auc"][1]
    assert_close(actual["roc_auc"][1], max(0, expected_binned["roc_auc"][0] - delong - margin), "roc_auc ci_low")
    assert abs(actual["roc_auc"][0] - expected["roc_auc"][0]) <= margin
    assert actual["roc_auc"][1] <= expected["roc_auc"][0] <= actual["roc_auc"][2]
    assert actual["roc_auc"][7] == "binned" and actual["pr_auc"][7] == "binned"
    assert_close(actual["roc_auc"][8], margin, "roc_auc bound")
    assert abs(actual["pr_auc"][0] - expected["pr_auc"][0]) <= actual["pr_auc"][8]
    assert actual["accuracy"][7] is None and actual["accuracy"][8] is None


def write_ranking_day(landing, day, rows_per_kind):
    """A day of 'toy' with a segment column: 'spread' rows score continuously over [0, 1]
    (a quarter of the bins separates them), 'narrow' rows over [0.4, 0.6] (500 coarse bins
    are too few, 2,000 fine ones enough), 'packed' rows all inside one bin of 10,000 (no
    bins can separate them)."""
    rng = np.random.default_rng(day.toordinal())
    n = 3 * rows_per_kind
    y = (rng.random(n) < 0.3).astype(int)
    spread = np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)
    narrow = 0.4 + 0.2 * np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)
    packed = 0.50001 + 0.00008 * np.clip(0.4 * y + 0.6 * rng.random(n), 0, 1)
    kind = np.array(["spread", "narrow", "packed"])[np.arange(n) // rows_per_kind]
    moments = pd.Timestamp(day) + pd.to_timedelta(np.sort(rng.uniform(60, 80_000, n)), unit="s")
    ids = [f"rank-{day:%Y%m%d}-{i}" for i in range(n)]
    predictions = pd.DataFrame({"prediction_id": ids, "model_name": "toy", "model_version": "v1",
                                "event_at": moments - pd.Timedelta(seconds=5), "predicted_at": moments,
                                "score": np.select([kind == "spread", kind == "narrow"], [spread, narrow], packed),
                                "kind": kind})
    labels = pd.DataFrame({"prediction_id": ids, "model_name": "toy", "label": y.astype(str),
                           "labeled_at": moments + pd.Timedelta(hours=1)})
    write_partition(landing, "predictions", day, predictions, "toy.parquet")
    write_partition(landing, "labels", day, labels, "toy.parquet")


@pytest.mark.parametrize("ranking_bins", [None, "exact"])
def test_adaptive_ranking_bins_a_window_only_where_that_cannot_change_a_decision(tmp_path, ranking_bins):
    """Unset ranking_bins: a window with more labeled rows than bins ranks its bins when the
    proven bounds are under a tenth of the interval's half-width, trying a quarter of the
    bins first (the 'spread' segment's 3-day window stands there, the 'narrow' one only
    with every bin), else exactly (the 'packed' segment, whose scores share one bin, and
    the whole model, which holds it); a window with fewer rows than bins ranks exactly
    (1-day windows). ranking_bins: exact ranks every window exactly."""
    def edit(data):
        data["models"]["toy"]["segments"] = ["kind"]
        if ranking_bins:
            data["models"]["toy"]["ranking_bins"] = ranking_bins
    config = toy_config(tmp_path, edit=edit)
    days = [dt.date(2026, 3, 1) + dt.timedelta(days=offset) for offset in range(3)]
    for day in days:
        write_ranking_day(config.landing, day, rows_per_kind=6_000)
    nightly.backfill(config, days[0], days[-1], backtest=False)
    rows = ref.labeled_rows(config.warehouse, "toy", days[-1], 5)
    methods = {}
    for window_days in (1, 3):
        part = ref.window(rows, days[-1], window_days).assign(weight=1.0)
        for value in ("__all__", "spread", "narrow", "packed"):
            subset = part if value == "__all__" else part[part["kind"] == value]
            segment = "__all__" if value == "__all__" else "kind"
            actual = stored(config, "toy", "__all__", window_days, days[-1], segment, value)
            expected = ref.binary(subset)
            binned = {bins: ref.binned_ranking(subset, bins) for bins in (2_500, 10_000)}
            used = {}
            for metric in ("roc_auc", "pr_auc", "accuracy", "log_loss"):
                used[metric] = assert_metric(actual[metric], expected[metric], metric, binned)
            methods[(window_days, value)] = tuple(actual[m][7] if actual[m][7] == "exact" else used[m]
                                                  for m in ("roc_auc", "pr_auc"))
    if ranking_bins == "exact":
        assert set(methods.values()) == {("exact", "exact")}
    else:
        exact = ("exact", "exact")
        assert methods == {(1, "__all__"): exact, (1, "spread"): exact, (1, "narrow"): exact, (1, "packed"): exact,
                           (3, "__all__"): exact, (3, "spread"): (2_500, 2_500), (3, "narrow"): (10_000, 10_000),
                           (3, "packed"): exact}
