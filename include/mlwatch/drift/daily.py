"""One histogram per model, day and feature, against the reference's bins.

Histograms are additive, so a trailing window is the sum of its days: each day's rows
are scanned once, when its partition is loaded (or loaded again), and never again. A
day's row is keyed by the reference summary and the partition's fingerprint; when
either changes the day is counted again.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np

from mlwatch.drift.reference import SCORE, ModelReference
from mlwatch.warehouse import literal, quote

DDL = """
CREATE TABLE IF NOT EXISTS ops.drift_daily (
    model_name VARCHAR, reference_id VARCHAR, day DATE, partition_fingerprint VARCHAR, feature VARCHAR,
    n BIGINT, counts BIGINT[], psi_counts BIGINT[], n_below BIGINT, n_above BIGINT, minimum DOUBLE, maximum DOUBLE,
    score_sums DOUBLE[], tail_below DOUBLE, tail_above DOUBLE
)
"""
# Score sums are added as decimals: exact, so the same in any order and on any number of threads.
EXACT_SCORE = "CAST(score AS DECIMAL(38, 12))"


def _aligned(histogram: dict | None, keys: list) -> list[int]:
    histogram = histogram or {}
    return [int(histogram.get(k, 0)) for k in keys]


def ensure(con: duckdb.DuckDBPyConnection, reference: ModelReference, days: list[dt.date]) -> list[dt.date]:
    """Count every day in `days` that has loaded predictions and no current histogram; returns those days."""
    con.execute(DDL)
    for column, kind in (("score_sums", "DOUBLE[]"), ("tail_below", "DOUBLE"), ("tail_above", "DOUBLE")):
        con.execute(f"ALTER TABLE ops.drift_daily ADD COLUMN IF NOT EXISTS {column} {kind}")
    if not days:
        return []
    partitions = dict(con.execute(
        "SELECT partition_date, fingerprint FROM ops.ingest_partitions WHERE feed = 'predictions' "
        "AND status = 'loaded' AND partition_date BETWEEN ? AND ?", [min(days), max(days)]).fetchall())
    current = dict(con.execute(
        "SELECT DISTINCT day, partition_fingerprint FROM ops.drift_daily WHERE model_name = ? AND reference_id = ? "
        "AND day BETWEEN ? AND ?", [reference.model_name, reference.reference_id, min(days), max(days)]).fetchall())
    counted = []
    for day in days:
        fingerprint = partitions.get(day)
        if fingerprint is None or current.get(day) == fingerprint:
            continue
        _count_day(con, reference, day, fingerprint)
        counted.append(day)
    return counted


DAY_ROWS = "FROM raw.predictions WHERE model_name = ? AND _partition_date = ? AND CAST(predicted_at AS DATE) = ?"


def _count_day(con: duckdb.DuckDBPyConnection, reference: ModelReference, day: dt.date, fingerprint: str) -> None:
    # The day's rows all sit in its own partition (ingest enforces predicted_at's date).
    where = [reference.model_name, day, day]
    numeric = [f for f in reference.features.values() if f.kind == "numeric"]
    within = {f.feature: _psi_edges_within(f) for f in numeric}
    # The numeric features' ranges first, then each feature's count and histograms: one scan.
    selects = [f"{extreme}({quote(f.column)})" for f in numeric for extreme in ("min", "max")]
    params = []
    for f in reference.features.values():
        column = quote(f.column)
        if f.kind == "numeric":
            selects += [f"count({column})", f"histogram({column}, ?::DOUBLE[])"]
            params += [f.edges]
            if within[f.feature] is None:  # a summary whose deciles are not fine edges
                selects.append(f"histogram({column}, ?::DOUBLE[])")
                params.append(f.psi_edges)
        else:
            # A small integer map however many distinct values the day brings; the rest of
            # the non-NULL values are '__other__'.
            selects += [f"count({column})", f"histogram({_category_position(f)})"]
    row = con.execute(f"SELECT {', '.join(selects)} {DAY_ROWS}", [*params, *where]).fetchone()
    ranges = {f.feature: (row[2 * i], row[2 * i + 1]) for i, f in enumerate(numeric)}
    # Rows beyond the reference's range, and how far beyond (summed exactly), are asked for
    # only when the day's minimum or maximum says there are any.
    beyond = {f.feature: (low is not None and low < f.minimum, high is not None and high > f.maximum)
              for f in numeric for low, high in [ranges[f.feature]]}
    tails = _tails(con, reference, beyond, where)
    sums = _score_sums(con, reference, day)
    con.execute("DELETE FROM ops.drift_daily WHERE model_name = ? AND day = ?", [reference.model_name, day])
    values = iter(row[2 * len(numeric):])
    for f in reference.features.values():
        if f.kind == "numeric":
            n, fine = next(values), next(values)
            minimum, maximum = ranges[f.feature]
            counts = _aligned(fine, [*f.edges, float("inf")])
            psi_bins = within[f.feature]
            if psi_bins is None:
                psi_counts = _aligned(next(values), [*f.psi_edges, float("inf")])
            else:
                psi_counts = [int(c) for c in np.bincount(psi_bins, weights=counts, minlength=len(f.psi_edges) + 1)]
            below, tail_below, above, tail_above = tails.get(f.feature, (0, 0.0, 0, 0.0))
        else:
            n, positions = next(values), next(values) or {}
            counts = [int(positions.get(i + 1, 0)) for i in range(len(f.categories))]
            counts.append(int(n) - sum(counts))  # OTHER
            psi_counts, below, above, minimum, maximum, tail_below, tail_above = counts, None, None, None, None, None, None
        bins = len(psi_counts)
        score_sums = [float(sums.get((f.feature, b), 0.0)) for b in range(bins)] if f.feature != SCORE else None
        con.execute("INSERT INTO ops.drift_daily VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [reference.model_name, reference.reference_id, day, fingerprint, f.feature, n, counts,
                     psi_counts, below, above, minimum, maximum, score_sums, tail_below, tail_above])


def _tails(con: duckdb.DuckDBPyConnection, reference: ModelReference, beyond: dict[str, tuple[bool, bool]],
           where: list) -> dict[str, tuple[int, float, int, float]]:
    """Per numeric feature with rows beyond the reference's range: (rows below, how far
    below in all, rows above, how far above), the distances summed exactly.

    One query over the day's rows that lie beyond some feature's range: few rows, so the
    distances are summed over those rows only, not checked on every row of the day.
    """
    selects, params, conditions, condition_params, asked = [], [], [], [], []
    for f in reference.features.values():
        if f.kind != "numeric":
            continue
        column = quote(f.column)
        for side, bound, distance in (("<", f.minimum, f"? - {column}"), (">", f.maximum, f"{column} - ?")):
            if not beyond[f.feature][side == ">"]:
                continue
            selects += [f"count(*) FILTER (WHERE {column} {side} ?)",
                        f"sum(CAST({distance} AS DECIMAL(38, 12))) FILTER (WHERE {column} {side} ?)"]
            params += [bound, bound, bound]
            conditions.append(f"{column} {side} ?")
            condition_params.append(bound)
            asked.append((f.feature, side))
    if not asked:
        return {}
    row = con.execute(f"SELECT {', '.join(selects)} {DAY_ROWS} AND ({' OR '.join(conditions)})",
                      [*params, *where, *condition_params]).fetchone()
    tails: dict[str, list] = {}
    for i, (feature, side) in enumerate(asked):
        entry = tails.setdefault(feature, [0, 0.0, 0, 0.0])
        offset = 0 if side == "<" else 2
        entry[offset], entry[offset + 1] = int(row[2 * i] or 0), float(row[2 * i + 1] or 0)
    return {feature: tuple(entry) for feature, entry in tails.items()}


def _psi_edges_within(f) -> np.ndarray | None:
    """Per fine bin (and the one above the last edge), its PSI bin; None unless every PSI edge is a fine edge.

    Fine bins are (e[j-1], e[j]]; when the deciles are among the fine edges, every fine
    bin lies inside one PSI bin, and the PSI counts are sums of fine counts: one
    histogram per feature instead of two.
    """
    edges, psi = np.asarray(f.edges, dtype=float), np.asarray(f.psi_edges, dtype=float)
    if not np.isin(psi, edges).all():
        return None
    return np.searchsorted(psi, np.append(edges, np.inf), side="left")


def _category_position(f) -> str:
    """A categorical row's 1-based position in the reference's categories; NULL for any other value."""
    categories = ", ".join(literal(c) for c in f.categories)
    return f"list_position([{categories}]::VARCHAR[], CAST({quote(f.column)} AS VARCHAR))"


def _bin_expression(f) -> str:
    """The PSI bin (0-based) of a non-NULL value: decile bins for numeric features, categories otherwise."""
    if f.kind == "numeric":
        column = quote(f.column)
        cases = " ".join(f"WHEN {column} <= {edge!r} THEN {i}" for i, edge in enumerate(f.psi_edges))
        return f"CASE {cases} ELSE {len(f.psi_edges)} END"
    return f"coalesce({_category_position(f)} - 1, {len(f.categories)})"


def _score_sums(con: duckdb.DuckDBPyConnection, reference: ModelReference, day: dt.date) -> dict[tuple[str, int], float]:
    """Sum of the score per feature bin: how the model's output depends on the feature."""
    features = [f for f in reference.features.values() if f.feature != SCORE]
    branches = [
        f"SELECT '{f.feature}' AS feature, {_bin_expression(f)} AS bin, sum(exact_score) AS total FROM day_rows "
        f"WHERE {quote(f.column)} IS NOT NULL GROUP BY 2"
        for f in features
    ]
    if not branches:
        return {}
    # The score is cast to its exact decimal once per row, not once per feature.
    columns = ", ".join(dict.fromkeys(quote(f.column) for f in features))
    rows = con.execute(
        f"WITH day_rows AS (SELECT {EXACT_SCORE} AS exact_score, {columns} {DAY_ROWS}) {' UNION ALL '.join(branches)}",
        [reference.model_name, day, day]).fetchall()
    return {(feature, int(b)): float(total) for feature, b, total in rows}
