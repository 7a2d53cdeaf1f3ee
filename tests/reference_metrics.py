"""Independent reference implementations: the tests compute every number mlwatch stores
again from the raw rows, with scikit-learn and scipy, and compare."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
from scipy import stats
from sklearn import metrics as skm

Z = stats.norm.ppf(0.975)


def labeled_rows(warehouse, model: str, run_date: dt.date, delay: int) -> pd.DataFrame:
    """Predictions of a model with the label mlwatch must use on run_date: the latest label that
    arrived by the run date and within `delay` days of the prediction's day."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        predictions = con.execute(
            "SELECT * FROM raw.predictions WHERE model_name = ? AND _partition_date <= ?", [model, run_date]).df()
        labels = con.execute(
            "SELECT prediction_id, label, labeled_at, weight FROM raw.labels WHERE model_name = ? AND _partition_date <= ?",
            [model, run_date]).df()
    predictions["day"] = pd.to_datetime(predictions["predicted_at"]).dt.date
    labels["labeled_day"] = pd.to_datetime(labels["labeled_at"]).dt.date
    joined = labels.merge(predictions[["prediction_id", "day"]], on="prediction_id")
    horizon = joined["day"].map(lambda d: min(run_date, d + dt.timedelta(days=delay)))
    usable = joined[joined["labeled_day"] <= horizon]
    latest = usable.sort_values(["labeled_at", "label"]).groupby("prediction_id").tail(1)
    return predictions.merge(latest[["prediction_id", "label", "weight"]], on="prediction_id", how="left")


def window(rows: pd.DataFrame, end: dt.date, days: int, version: str | None = None) -> pd.DataFrame:
    start = end - dt.timedelta(days=days - 1)
    part = rows[(rows["day"] >= start) & (rows["day"] <= end)]
    return part if version in (None, "__all__") else part[part["model_version"] == version]


def wilson(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return ci.low, ci.high


def mean_interval(values: np.ndarray) -> tuple[float, float]:
    return stats.norm.interval(0.95, loc=np.mean(values), scale=stats.sem(values))


def delong_variance(y: np.ndarray, s: np.ndarray) -> float:
    """DeLong et al. (1988) via midranks (Sun & Xu 2014)."""
    pos, neg = s[y == 1], s[y == 0]
    m, n = len(pos), len(neg)
    all_ranks = stats.rankdata(np.concatenate([pos, neg]))
    pos_ranks, neg_ranks = stats.rankdata(pos), stats.rankdata(neg)
    v10 = (all_ranks[:m] - pos_ranks) / n
    v01 = 1 - (all_ranks[m:] - neg_ranks) / m
    return np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n


def binary(rows: pd.DataFrame, positive: str = "1", threshold: float = 0.5, weight_column: str | None = None) -> dict:
    """Every binary metric with its interval: {metric: (value, low, high)}."""
    labeled = rows.dropna(subset=["label"])
    y = (labeled["label"] == positive).astype(int).to_numpy()
    s = labeled["score"].to_numpy()
    predicted = (s >= threshold).astype(int)
    tp, fp = int(((predicted == 1) & (y == 1)).sum()), int(((predicted == 1) & (y == 0)).sum())
    fn, tn = int(((predicted == 0) & (y == 1)).sum()), int(((predicted == 0) & (y == 0)).sum())
    out = {}
    auc = skm.roc_auc_score(y, s)
    half = Z * np.sqrt(delong_variance(y, s))
    out["roc_auc"] = (auc, max(0, auc - half), min(1, auc + half))
    ap = skm.average_precision_score(y, s)
    spread = Z / np.sqrt(y.sum() * ap * (1 - ap))
    logit = np.log(ap / (1 - ap))
    out["pr_auc"] = (ap, 1 / (1 + np.exp(-(logit - spread))), 1 / (1 + np.exp(-(logit + spread))))
    out["accuracy"] = (skm.accuracy_score(y, predicted), *wilson(tp + tn, len(y)))
    out["precision"] = (skm.precision_score(y, predicted), *wilson(tp, tp + fp))
    out["recall"] = (skm.recall_score(y, predicted), *wilson(tp, tp + fn))
    f1 = skm.f1_score(y, predicted)
    n_eff = tp + (fp + fn) / 2
    center = (f1 + Z**2 / (2 * n_eff)) / (1 + Z**2 / n_eff)
    width = Z * np.sqrt(f1 * (1 - f1) / n_eff + Z**2 / (4 * n_eff**2)) / (1 + Z**2 / n_eff)
    out["f1"] = (f1, center - width, center + width)
    losses = -(y * np.log(np.clip(s, 1e-300, None)) + (1 - y) * np.log(np.clip(1 - s, 1e-300, None)))
    out["log_loss"] = (skm.log_loss(y, s), *mean_interval(losses))
    brier = (s - y) ** 2
    low, high = mean_interval(brier)
    out["brier"] = (skm.brier_score_loss(y, s), max(0, low), high)
    all_predicted = (rows["score"].to_numpy() >= threshold).astype(int)
    out["positive_rate"] = (all_predicted.mean(), *wilson(all_predicted.sum(), len(all_predicted)))
    w = (labeled[weight_column] if weight_column else labeled["weight"]).fillna(0).to_numpy()
    caught = ((predicted == 1) & (y == 1)).astype(float)
    ratio = skm.recall_score(y, predicted, sample_weight=w)
    var = np.sum((w[y == 1] ** 2) * (caught[y == 1] - ratio) ** 2) / w[y == 1].sum() ** 2
    out["weighted_recall"] = (ratio, max(0, ratio - Z * np.sqrt(var)), min(1, ratio + Z * np.sqrt(var)))
    return out


def binned_ranking(rows: pd.DataFrame, bins: int, positive: str = "1") -> dict:
    """ROC AUC and average precision of the labeled scores floored to `bins` equal bins of
    [0, 1] (1.0 in the last): what a binned ranking must equal. scikit-learn counts a
    positive-negative pair in one bin as one half and a bin as one threshold."""
    labeled = rows.dropna(subset=["label"])
    y = (labeled["label"] == positive).astype(int).to_numpy()
    b = np.minimum(np.floor(labeled["score"].to_numpy() * bins), bins - 1)
    return {"roc_auc": skm.roc_auc_score(y, b), "pr_auc": skm.average_precision_score(y, b)}


def regression(rows: pd.DataFrame) -> dict:
    labeled = rows.dropna(subset=["label"])
    y = labeled["label"].astype(float).to_numpy()
    p = labeled["score"].to_numpy()
    e = y - p
    out = {}
    low, high = mean_interval(np.abs(e))
    out["mae"] = (skm.mean_absolute_error(y, p), max(0, low), high)
    mse, se = np.mean(e**2), stats.sem(e**2)
    out["rmse"] = (skm.root_mean_squared_error(y, p), np.sqrt(max(0, mse - Z * se)), np.sqrt(mse + Z * se))
    ape = np.abs(e) / np.maximum(np.abs(y), np.finfo(np.float64).eps)
    low, high = mean_interval(ape)
    out["mape"] = (skm.mean_absolute_percentage_error(y, p), max(0, low), high)
    sst = np.sum((y - y.mean()) ** 2)
    out["r2"] = (skm.r2_score(y, p), 1 - (mse + Z * se) * len(y) / sst, 1 - max(0, mse - Z * se) * len(y) / sst)
    return out
