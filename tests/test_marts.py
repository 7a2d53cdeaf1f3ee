"""The daily marts against pandas and numpy on the raw rows of the small demo."""

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

from mlwatch.demo import incidents as inc
from tests.conftest import SMALL_DEMO


@pytest.fixture(scope="module")
def con(demo_warehouse):
    con = duckdb.connect(str(demo_warehouse.warehouse), read_only=True)
    yield con
    con.close()


@pytest.fixture(scope="module")
def predictions(con):
    frame = con.execute("SELECT * FROM raw.predictions").df()
    frame["day"] = pd.to_datetime(frame["predicted_at"]).dt.date
    return frame


def table(con, name, where=""):
    frame = con.execute(f"SELECT * FROM marts.{name} {where}").df()
    for column in ("day", "prediction_day", "known_on"):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column]).dt.date
    return frame


def test_feature_coverage_counts_every_kind_of_missing(con, predictions, demo_warehouse):
    coverage = table(con, "feature_coverage").set_index(["model_name", "day", "feature"])
    for (model, feature), spec in [(("card_fraud", f), s) for f, s in demo_warehouse.models["card_fraud"].features.items()] + \
                                  [(("delivery_eta", f), s) for f, s in demo_warehouse.models["delivery_eta"].features.items()]:
        rows = predictions[predictions["model_name"] == model]
        reference = rows[(rows["day"] >= dt.date(2026, 8, 1)) & (rows["day"] <= dt.date(2026, 8, 21))]
        for day in (dt.date(2026, 8, 5), dt.date(2026, 9, 11)):
            values = rows.loc[rows["day"] == day, feature]
            null = values.isna()
            default = ~null & (values == spec.default) if spec.default is not None else pd.Series(False, index=values.index)
            if spec.type == "numeric":
                low = values < spec.min if spec.min is not None else False
                high = values > spec.max if spec.max is not None else False
                invalid = ~null & ~default & (low | high)
                oov = None
            else:
                vocabulary = set(spec.values) if spec.values else set(reference[feature].dropna())
                invalid = ~null & ~default & ~values.isin(spec.values) if spec.values else pd.Series(False, index=values.index)
                oov = int((~null & ~default & ~values.isin(vocabulary)).sum())
            got = coverage.loc[(model, day, feature)]
            assert (got["n"], got["n_null"], got["n_default"], got["n_invalid"]) == \
                (len(values), null.sum(), default.sum(), invalid.sum()), (model, day, feature)
            assert got["coverage"] == pytest.approx((~null & ~default & ~invalid).mean(), rel=1e-12)
            assert (pd.isna(got["n_out_of_vocabulary"]) if oov is None else got["n_out_of_vocabulary"] == oov)


def test_the_feature_outage_shows_on_exactly_the_injected_days(con):
    low = con.execute("SELECT day FROM marts.feature_coverage WHERE model_name = 'card_fraud' "
                      "AND feature = 'account_age_days' AND coverage < 0.98 ORDER BY day").fetchall()
    injected = [inc.FEATURE_OUTAGE.first_day() + dt.timedelta(days=i) for i in range(3)]
    assert [d for (d,) in low] == injected
    others = con.execute("SELECT count(*) FROM marts.feature_coverage WHERE feature <> 'account_age_days' "
                         "AND is_critical AND coverage < 0.98").fetchone()[0]
    assert others == 0


def test_cost_adds_the_feed_and_per_prediction_costs(con, predictions):
    costs = con.execute("SELECT model_name, _partition_date AS day, sum(cost_usd) FROM raw.costs GROUP BY ALL").df()
    costs.columns = ["model_name", "day", "feed"]
    costs["day"] = pd.to_datetime(costs["day"]).dt.date
    logged = predictions.groupby(["model_name", "day"]).agg(n=("prediction_id", "size"),
                                                               logged=("cost_usd", "sum")).reset_index()
    expected = logged.merge(costs, on=["model_name", "day"], how="outer").fillna({"logged": 0.0, "feed": 0.0})
    got = table(con, "cost").merge(expected, on=["model_name", "day"])
    assert len(got) == len(expected) == 2 * SMALL_DEMO.days
    np.testing.assert_allclose(got["cost_usd"], got["feed"] + got["logged"], rtol=1e-12)
    np.testing.assert_allclose(got["cost_per_prediction_usd"], (got["feed"] + got["logged"]) / got["n"], rtol=1e-12)
    over = got[(got["model_name"] == "delivery_eta") & (got["cost_per_prediction_usd"] > 0.002)]["day"]
    assert sorted(over) == [d for d in sorted(got["day"].unique()) if inc.COST_SPIKE.covers(d)]
    components = table(con, "cost_components", "WHERE model_name = 'card_fraud' AND day = DATE '2026-08-10'")
    assert set(components["component"]) == {"compute", "storage", "per_prediction"}


def test_time_to_decision_percentiles_equal_numpy(con, predictions):
    got = table(con, "time_to_decision").set_index(["model_name", "day"])
    for model in ("card_fraud", "delivery_eta"):
        for day in (dt.date(2026, 8, 3), dt.date(2026, 9, 26)):
            rows = predictions[(predictions["model_name"] == model) & (predictions["day"] == day)]
            seconds = (pd.to_datetime(rows["predicted_at"]) - pd.to_datetime(rows["event_at"])).dt.total_seconds()
            row = got.loc[(model, day)]
            assert row["n"] == len(rows)
            for column, q in (("p50_s", 50), ("p95_s", 95), ("p99_s", 99)):
                assert row[column] == pytest.approx(np.percentile(seconds, q), rel=1e-9)
            assert row["max_s"] == pytest.approx(seconds.max())
            assert row["serving_latency_p95_ms"] == pytest.approx(np.percentile(rows["latency_ms"], 95), rel=1e-9)


def test_label_maturity_against_the_raw_labels(con, predictions):
    labels = con.execute("SELECT prediction_id, min(labeled_at) AS first_at FROM raw.labels "
                         "WHERE model_name = 'card_fraud' GROUP BY 1").df()
    fraud = predictions[predictions["model_name"] == "card_fraud"].merge(labels, on="prediction_id", how="left")
    fraud["age"] = (pd.to_datetime(fraud["first_at"]).dt.normalize() - pd.to_datetime(fraud["day"])).dt.days
    got = table(con, "label_maturity", "WHERE model_name = 'card_fraud'").set_index("prediction_day")
    end = SMALL_DEMO.end
    for day in (dt.date(2026, 9, 25), dt.date(2026, 9, 10), dt.date(2026, 8, 15)):
        known_on = min(end, day + dt.timedelta(days=30))
        age = (known_on - day).days
        rows = fraud[fraud["day"] == day]
        row = got.loc[day]
        assert (row["known_on"], row["age_days"], row["is_mature"]) == (known_on, age, age >= 30)
        assert row["n_predictions"] == len(rows)
        assert row["n_labeled"] == (rows["age"] <= age).sum()   # labels arrived by known_on
        reference = fraud[(fraud["day"] >= dt.date(2026, 8, 1)) & (fraud["day"] <= dt.date(2026, 8, 21))
                          & (fraud["day"] + dt.timedelta(days=age) <= known_on)]
        assert row["expected_coverage"] == pytest.approx((reference["age"] <= age).mean(), rel=1e-12)


def test_slo_status_judges_every_slo_from_the_marts(con, demo_warehouse):
    slo = table(con, "slo_status")
    assert set(slo["slo"]) == {"time_to_decision_p95_s", "performance", "min_feature_coverage", "max_data_loss",
                               "max_cost_per_prediction_usd", "min_label_coverage"}
    ttd = slo[(slo["model_name"] == "card_fraud") & (slo["slo"] == "time_to_decision_p95_s")]
    breached = sorted(ttd.loc[ttd["met"] == False, "day"])  # noqa: E712
    assert breached == [d for d in sorted(ttd["day"]) if inc.STAGE_SATURATION.covers(d)]
    row = slo[(slo["model_name"] == "card_fraud") & (slo["slo"] == "performance")
              & (slo["day"] == dt.date(2026, 8, 25))].iloc[0]
    perf = con.execute("SELECT value, reference_value FROM marts.performance WHERE model_name = 'card_fraud' "
                       "AND model_version = '__all__' AND segment = '__all__' AND metric = 'roc_auc' "
                       "AND window_days = 7 AND window_end = DATE '2026-08-25'").fetchone()
    assert row["actual"] == perf[0] and row["target"] == pytest.approx(perf[1] * 0.98)
    assert row["met"] == (perf[0] >= perf[1] * 0.98)
    coverage = slo[(slo["model_name"] == "card_fraud") & (slo["slo"] == "min_feature_coverage") & (slo["met"] == False)]  # noqa: E712
    assert sorted(coverage["day"]) == [inc.FEATURE_OUTAGE.first_day() + dt.timedelta(days=i) for i in range(3)]
    assert set(coverage["detail"]) == {"account_age_days"}


def test_data_quality_counts_every_row(con):
    quality = table(con, "data_quality")
    accepted = con.execute("SELECT count(*) FROM raw.predictions").fetchone()[0]
    assert quality.loc[quality["feed"] == "predictions", "n_accepted"].sum() == accepted
    assert (quality["n_rows"] == quality["n_accepted"] + quality["n_quarantined"]).all()
    # Malformed lines cannot name their model.
    assert set(quality["model_name"]) == {"card_fraud", "delivery_eta", "__pipeline__", "__unknown__"}
