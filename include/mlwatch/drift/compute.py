"""Drift per model, trailing window, window end, feature and method (ops.drift_statistics).

Windows are sums of daily histograms, the reference is the sum of its days' histograms
against its own bins. Each night's tests of a model (every window, feature and method
with a p-value) are adjusted together with Benjamini-Hochberg. A method flags drift only
with enough rows on both sides (drift.min_samples), when the feature's test rejects
(KS for numeric features, chi-square for categorical ones: adjusted p-value under
drift.p_value) and the method's effect passes its threshold: KS statistic, share of
traffic that changed category (chi-square), Wasserstein in reference standard
deviations or Jensen-Shannon >= distance_threshold, PSI >= psi_threshold. So a large
sample alone never makes drift, and a small one cannot make it by noise.

Whether a drifted feature matters is measured by how much it moves the score: the
shift of the mean score that the feature's new distribution implies, given the mean
score of each of its bins in the reference, in reference score standard deviations
(score_impact). A feature the model ignores has flat bin means and no impact, however
far it drifts; moves_score is score_impact >= drift.impact_threshold.

marts.drift (dbt) adds whether the model's performance moved in the same window.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Callable

import duckdb
import numpy as np

from mlwatch.config import Config, ModelConfig
from mlwatch.drift import daily, reference
from mlwatch.drift.methods import REGISTRY, benjamini_hochberg

log = logging.getLogger(__name__)

DDL = """
CREATE TABLE IF NOT EXISTS ops.drift_statistics (
    model_name VARCHAR, window_days INTEGER, window_end DATE, feature VARCHAR, feature_type VARCHAR,
    method VARCHAR, statistic DOUBLE, p_value DOUBLE, p_value_adjusted DOUBLE, effect_size DOUBLE,
    threshold DOUBLE, is_drifted BOOLEAN, n_current BIGINT, n_reference BIGINT, outside_reference_share DOUBLE,
    score_impact DOUBLE, moves_score BOOLEAN
)
"""
DAY = dt.timedelta(days=1)


@dataclass
class Day:
    n: int
    counts: np.ndarray
    psi_counts: np.ndarray
    below: int
    above: int
    minimum: float | None
    maximum: float | None
    score_sums: np.ndarray | None
    tail_below: float = 0.0
    tail_above: float = 0.0


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + i * DAY for i in range((end - start).days + 1)]


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)
    for column, kind in (("score_impact", "DOUBLE"), ("moves_score", "BOOLEAN")):
        con.execute(f"ALTER TABLE ops.drift_statistics ADD COLUMN IF NOT EXISTS {column} {kind}")
    con.execute(reference.DDL)
    con.execute(daily.DDL)


def run(con: duckdb.DuckDBPyConnection, config: Config, run_date: dt.date, first_window_end: dt.date,
        progress: Callable[[str], None] | None = None) -> int:
    """Drift of the night's window ends, and of every window a newly counted day falls in.

    Statistics depend on predictions only, so a window's rows change only when one of
    its days is counted again (a late or changed partition); those windows, and the
    night's own, are computed. Returns the number of rows written; `progress` hears of
    each model as it is done.
    """
    ensure_tables(con)
    first = first_window_end - dt.timedelta(days=config.max_label_delay_days)
    written = 0
    for name, model in sorted(config.models.items()):
        summary = reference.ensure(con, name, model)
        if summary is None or run_date < summary.end:
            log.info("drift of %s waits for its reference period %s..%s", name, model.reference.start,
                     model.reference.end)
            continue
        candidates = _days(max(first, summary.end), run_date)
        span = (max(model.windows) - 1) * DAY
        oldest = min(summary.start, candidates[0] - span)
        counted = set(daily.ensure(con, summary, _days(oldest, run_date)))
        stored = {d for (d,) in con.execute("SELECT DISTINCT window_end FROM ops.drift_statistics WHERE model_name = ?",
                                            [name]).fetchall()}
        reference_recounted = any(summary.start <= d <= summary.end for d in counted)
        ends = [e for e in candidates if e == run_date or e not in stored or reference_recounted
                or any(e - span <= d <= e for d in counted)]
        rows = _window_rows(con, name, model, summary, ends, oldest)
        for end in ends:
            con.execute("DELETE FROM ops.drift_statistics WHERE model_name = ? AND window_end = ?", [name, end])
        if rows:
            con.executemany(f"INSERT INTO ops.drift_statistics VALUES ({', '.join('?' * 17)})", rows)
        written += len(rows)
        if progress:
            progress(f"{name}: {len(counted)} day(s) counted, {len(ends)} window end(s), {len(rows):,} statistics")
    return written


def _load(con: duckdb.DuckDBPyConnection, summary: reference.ModelReference, start: dt.date,
          end: dt.date) -> dict[tuple[dt.date, str], Day]:
    rows = con.execute(
        "SELECT day, feature, n, counts, psi_counts, n_below, n_above, minimum, maximum, score_sums, "
        "tail_below, tail_above FROM ops.drift_daily WHERE model_name = ? AND reference_id = ? AND day BETWEEN ? AND ?",
        [summary.model_name, summary.reference_id, start, end]).fetchall()
    return {(d, f): Day(n, np.asarray(c, dtype=np.int64), np.asarray(p, dtype=np.int64), b or 0, a or 0, lo, hi,
                        None if sums is None else np.asarray(sums, dtype=float), tb or 0.0, ta or 0.0)
            for d, f, n, c, p, b, a, lo, hi, sums, tb, ta in rows}


def _total(days: list[Day]) -> Day | None:
    if not days:
        return None
    known = [d for d in days if d.minimum is not None]
    return Day(
        n=sum(d.n for d in days),
        counts=np.sum([d.counts for d in days], axis=0),
        psi_counts=np.sum([d.psi_counts for d in days], axis=0),
        below=sum(d.below for d in days),
        above=sum(d.above for d in days),
        minimum=min((d.minimum for d in known), default=None),
        maximum=max((d.maximum for d in known), default=None),
        score_sums=None if days[0].score_sums is None else np.sum([d.score_sums for d in days], axis=0),
        tail_below=sum(d.tail_below for d in days),
        tail_above=sum(d.tail_above for d in days),
    )


def score_impact(ref: Day, cur: Day, score_spread: float | None) -> float | None:
    """|shift of the mean score implied by the feature's bins moving|, in reference score std devs."""
    if ref.score_sums is None or not score_spread or ref.n == 0 or cur.n == 0:
        return None
    overall = ref.score_sums.sum() / ref.psi_counts.sum()
    means = np.where(ref.psi_counts > 0, ref.score_sums / np.maximum(ref.psi_counts, 1), overall)
    shift = float(np.sum((cur.psi_counts / cur.psi_counts.sum() - ref.psi_counts / ref.psi_counts.sum()) * means))
    return abs(shift) / score_spread


def _window_rows(con, name: str, model: ModelConfig, summary: reference.ModelReference,
                 ends: list[dt.date], oldest: dt.date) -> list[tuple]:
    histograms = _load(con, summary, oldest, ends[-1])
    settings = model.drift
    rows: list[tuple] = []
    references = {f: _total([histograms[(d, f)] for d in _days(summary.start, summary.end) if (d, f) in histograms])
                  for f in summary.features}
    score_spread = summary.features[reference.SCORE].spread if reference.SCORE in summary.features else None
    for end in ends:
        night: list[dict] = []
        for window in model.windows:
            days = _days(end - (window - 1) * DAY, end)
            for feature, spec in summary.features.items():
                ref = references[feature]
                cur = _total([histograms[(d, feature)] for d in days if (d, feature) in histograms])
                if ref is None or cur is None:
                    continue
                methods = settings.numeric if spec.kind == "numeric" else settings.categorical
                enough = min(cur.n, ref.n) >= settings.min_samples
                outside = (cur.below + cur.above) / cur.n if spec.kind == "numeric" and cur.n else None
                impact = score_impact(ref, cur, score_spread) if enough else None
                for method_name in methods:
                    method = REGISTRY[method_name]
                    threshold = settings.psi_threshold if method.threshold == "psi" else settings.distance_threshold
                    row = {"window": window, "feature": feature, "kind": spec.kind, "method": method_name,
                           "threshold": threshold, "n_current": cur.n, "n_reference": ref.n, "outside": outside,
                           "statistic": None, "p": None, "effect": None, "has_p": method.has_p_value,
                           "impact": impact}
                    if enough:
                        result = _compute(method, spec, ref, cur)
                        row.update(statistic=result.statistic, p=result.p_value, effect=result.effect)
                    night.append(row)
        tested = [r for r in night if r["has_p"] and r["p"] is not None]
        for r, adjusted in zip(tested, benjamini_hochberg([r["p"] for r in tested])):
            r["adjusted"] = adjusted
        # Per window and feature: did its test reject? (No test configured: no gate.)
        rejects: dict[tuple[int, str], bool] = {}
        for r in tested:
            key = (r["window"], r["feature"])
            rejects[key] = rejects.get(key, False) or r["adjusted"] < settings.p_value
        for r in night:
            drifted = None
            if r["statistic"] is not None:
                drifted = bool(r["effect"] >= r["threshold"] and rejects.get((r["window"], r["feature"]), True))
            moves = None if r["impact"] is None else bool(r["impact"] >= settings.impact_threshold)
            rows.append((name, r["window"], end, r["feature"], r["kind"], r["method"], r["statistic"], r["p"],
                         r.get("adjusted"), r["effect"], r["threshold"], drifted, r["n_current"], r["n_reference"],
                         r["outside"], r["impact"], moves))
    return rows


def _compute(method, spec: reference.FeatureReference, ref: Day, cur: Day):
    if method.name == "psi":
        return method.compute(ref.psi_counts if spec.kind == "numeric" else ref.counts,
                              cur.psi_counts if spec.kind == "numeric" else cur.counts)
    if method.name == "wasserstein":
        return method.compute(ref.counts, cur.counts, edges=np.asarray(spec.edges),
                              tails=(cur.tail_below / cur.n, cur.tail_above / cur.n), spread=spec.spread or 0.0)
    return method.compute(ref.counts, cur.counts)
