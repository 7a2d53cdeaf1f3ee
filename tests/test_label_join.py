"""The delayed-label join: late labels, corrections, a label that arrives before its
prediction, and the label horizon; the metrics of a day change exactly when they should."""

import datetime as dt

import duckdb
import pandas as pd
import pytest

from mlwatch import nightly
from tests.helpers import fingerprint, toy_config, write_partition

D = dt.date(2026, 3, 10)


def day(offset):
    return D + dt.timedelta(days=offset)


def at(d, hour):
    return pd.Timestamp(d) + pd.Timedelta(hours=hour)


def predictions(rows):
    return pd.DataFrame([{"prediction_id": pid, "model_name": "toy", "model_version": "v1",
                          "event_at": at(D, 9), "predicted_at": at(D, 10), "score": score} for pid, score in rows])


def labels(rows, when):
    return pd.DataFrame([{"prediction_id": pid, "model_name": "toy", "label": label, "labeled_at": at(when, 8)}
                         for pid, label in rows])


def window_of_d(config):
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        row = con.execute(
            "SELECT n_predictions, n_labeled, value FROM marts.performance WHERE model_version = 'v1' "
            "AND window_days = 1 AND window_end = ? AND metric = 'accuracy'", [D]).fetchone()
    return row[0], row[1], row[2]


@pytest.fixture
def config(tmp_path):
    def edit(data):
        data["models"]["toy"]["min_labeled_rows"] = 1
    return toy_config(tmp_path, edit=edit)


def test_metrics_of_a_day_change_exactly_when_its_labels_arrive(config):
    land = config.landing
    # p1..p5 predicted on D; p1 and p2 predicted positive (score >= 0.5).
    write_partition(land, "predictions", D, predictions([("p1", 0.9), ("p2", 0.8), ("p3", 0.3), ("p4", 0.2),
                                                         ("p5", 0.1)]), "a.parquet")
    write_partition(land, "labels", day(1), labels([("p1", "1"), ("p3", "0"), ("p6", "0")], day(1)), "l.csv")
    write_partition(land, "labels", day(3), labels([("p2", "0")], day(3)), "l.csv")
    write_partition(land, "labels", day(4), labels([("p2", "1")], day(4)), "l.csv")   # corrects p2
    write_partition(land, "labels", day(7), labels([("p4", "1")], day(7)), "l.csv")   # after the 5-day horizon

    nightly.run_night(config, D)
    assert window_of_d(config) == (5, 0, None)          # nothing labeled yet

    nightly.run_night(config, day(1))
    assert window_of_d(config) == (5, 2, 1.0)            # p1, p3 right
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        # p6's label came before its prediction: kept, waiting.
        assert con.execute("SELECT count(*) FROM raw.labels WHERE prediction_id = 'p6'").fetchone()[0] == 1

    # p6's prediction (day D, predicted positive) lands late, in D's partition.
    write_partition(land, "predictions", D, predictions([("p6", 0.7)]), "late.parquet")
    nightly.run_night(config, day(2))
    assert window_of_d(config) == (6, 3, pytest.approx(2 / 3))   # the waiting label joined: p6 wrong

    nightly.run_night(config, day(3))
    assert window_of_d(config) == (6, 4, 0.5)            # p2 labeled 0: wrong

    nightly.run_night(config, day(4))
    before = fingerprint(config.warehouse)
    assert window_of_d(config) == (6, 4, 0.75)           # p2 corrected to 1: right

    nightly.run_night(config, day(4))                     # a rerun changes nothing
    assert fingerprint(config.warehouse) == before

    for offset in (5, 6, 7):
        nightly.run_night(config, day(offset))
    assert window_of_d(config) == (6, 4, 0.75)           # p4's label came after the horizon


def test_latest_label_wins_whatever_order_it_is_delivered_in(config):
    land = config.landing
    write_partition(land, "predictions", D, predictions([(f"q{i}", 0.9) for i in range(3)]), "a.parquet")
    # The correction (later labeled_at) sits in the same partition, listed first.
    frame = pd.concat([labels([("q0", "1")], day(1)).assign(labeled_at=at(day(1), 20)),
                       labels([("q0", "0"), ("q1", "1"), ("q2", "1")], day(1))])
    write_partition(land, "labels", day(1), frame, "l.csv")
    nightly.run_night(config, day(1))
    assert window_of_d(config) == (3, 3, 1.0)


def test_labels_on_d_plus_1_5_and_30_with_a_correction(tmp_path):
    def edit(data):
        data["models"]["toy"].update(min_labeled_rows=1, label_delay_days=30)
    config = toy_config(tmp_path, edit=edit)
    land = config.landing
    write_partition(land, "predictions", D, predictions([("a", 0.9), ("b", 0.8), ("c", 0.2), ("d", 0.3)]), "p.parquet")
    write_partition(land, "labels", day(1), labels([("a", "1")], day(1)), "l.csv")
    write_partition(land, "labels", day(5), labels([("b", "1")], day(5)), "l.csv")
    write_partition(land, "labels", day(20), labels([("a", "0")], day(20)), "l.csv")     # corrects a
    write_partition(land, "labels", day(30), labels([("c", "0")], day(30)), "l.csv")
    write_partition(land, "labels", day(31), labels([("d", "1")], day(31)), "l.csv")     # past the horizon

    seen = {}
    for offset in (0, 1, 4, 5, 20, 30):
        nightly.run_night(config, day(offset))
        seen[offset] = window_of_d(config)
    assert seen == {
        0: (4, 0, None),
        1: (4, 1, 1.0),      # a: predicted 1, label 1
        4: (4, 1, 1.0),      # nothing new
        5: (4, 2, 1.0),      # b: predicted 1, label 1
        20: (4, 2, 0.5),     # a corrected to 0: now wrong
        30: (4, 3, pytest.approx(2 / 3)),   # c: predicted 0, label 0
    }
    before = fingerprint(config.warehouse)
    nightly.run_night(config, day(30))
    assert fingerprint(config.warehouse) == before
    nightly.run_night(config, day(31))
    assert window_of_d(config) == (4, 3, pytest.approx(2 / 3))   # d's label came after 30 days
