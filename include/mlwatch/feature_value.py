"""How much the model relies on each feature, from the logged data (ops.feature_importance).

Importance is the correlation ratio η² of the score on the feature: the share of the
score's variance, over the model's judged window (slos.performance.window_days), that the
feature's bins explain (the reference's decile bins for numeric features, its categories
plus 'other' for categorical ones; rows without a value are left out of the bins). It is
what a one-hot regression of the score on the binned feature would score as R², so a
feature the model ignores scores about 0 and one that drives the score scores high. No
model is needed, only what was logged, and it is computed from the drift histograms'
per-bin score sums (ops.drift_daily) and each day's score moments: no row is read twice.

marts.feature_value (dbt) divides it by the feature's configured compute cost and lists
the features whose cost buys little (importance under var prune_importance).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import duckdb
import numpy as np

from mlwatch.config import Config
from mlwatch.drift import compute, reference

DDL = """
CREATE TABLE IF NOT EXISTS ops.feature_importance (
    model_name VARCHAR, window_days INTEGER, window_end DATE, feature VARCHAR, importance DOUBLE,
    n_rows BIGINT, n_with_value BIGINT
)
"""
DAY = dt.timedelta(days=1)


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS ops")
    con.execute(DDL)


def correlation_ratio(counts: np.ndarray, score_sums: np.ndarray, n: int, score_sum: float,
                      score_square_sum: float) -> float | None:
    """η² from per-bin counts and score sums and the window's score moments (all rows)."""
    total_ss = score_square_sum - score_sum * score_sum / n if n else 0.0
    binned = counts > 0
    n_binned = counts[binned].sum()
    if n < 2 or total_ss <= 1e-12 * max(1.0, score_square_sum) or n_binned == 0:
        return None
    between = float(np.sum(score_sums[binned] ** 2 / counts[binned]) - score_sums[binned].sum() ** 2 / n_binned)
    return float(min(1.0, max(0.0, between / total_ss)))


def _moments(con: duckdb.DuckDBPyConnection, model: str, start: dt.date, end: dt.date) -> dict[dt.date, tuple]:
    # Exact decimal sums: the same result in any order and on any number of threads.
    rows = con.execute(
        "SELECT _partition_date, count(score), sum(CAST(score AS DECIMAL(38, 12))), "
        "sum(CAST(score AS DECIMAL(38, 12)) * CAST(score AS DECIMAL(38, 12))) FROM raw.predictions "
        "WHERE model_name = ? AND _partition_date BETWEEN ? AND ? AND CAST(predicted_at AS DATE) = _partition_date "
        "AND score IS NOT NULL GROUP BY 1", [model, start, end]).fetchall()
    return {day: (int(n), float(s or 0), float(q or 0)) for day, n, s, q in rows}


def run(con: duckdb.DuckDBPyConnection, config: Config, run_date: dt.date, first_window_end: dt.date) -> int:
    """Importance of every feature for each window end first_window_end..run_date; returns rows written."""
    ensure_tables(con)
    written = 0
    for name, model in sorted(config.models.items()):
        summary = reference.ensure(con, name, model)
        # As drift does: the histograms exist once the reference period is over.
        if summary is None or run_date < summary.end:
            continue
        window = model.alert_window_days
        first = max(first_window_end, summary.end)
        ends = [first + i * DAY for i in range((run_date - first).days + 1)]
        oldest = ends[0] - (window - 1) * DAY
        histograms = compute._load(con, summary, oldest, run_date)
        moments = _moments(con, name, oldest, run_date)
        by_feature: dict[str, dict[dt.date, compute.Day]] = defaultdict(dict)
        for (day, feature), counted in histograms.items():
            if feature != reference.SCORE and counted.score_sums is not None:
                by_feature[feature][day] = counted
        rows = []
        for end in ends:
            days = [end - i * DAY for i in range(window)]
            n = sum(moments.get(d, (0, 0, 0))[0] for d in days)
            s = sum(moments.get(d, (0, 0, 0))[1] for d in days)
            q = sum(moments.get(d, (0, 0, 0))[2] for d in days)
            for feature, per_day in sorted(by_feature.items()):
                present = [per_day[d] for d in days if d in per_day]
                if not present:
                    continue
                counts = np.sum([p.psi_counts for p in present], axis=0)
                sums = np.sum([p.score_sums for p in present], axis=0)
                rows.append((name, window, end, feature, correlation_ratio(counts, sums, n, s, q), n,
                             int(counts.sum())))
        con.execute("DELETE FROM ops.feature_importance WHERE model_name = ? AND window_end BETWEEN ? AND ?",
                    [name, ends[0], ends[-1]])
        if rows:
            con.executemany("INSERT INTO ops.feature_importance VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        written += len(rows)
    return written
