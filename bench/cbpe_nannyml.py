"""The NannyML side of bench/cbpe_benchmark.py, run by bench/.venv-competitors' Python.

    python bench/cbpe_nannyml.py export ROWS.parquet [car_loan | work_from_home]
    python bench/cbpe_nannyml.py estimate REFERENCE.parquet WINDOWS.parquet

export: one of NannyML's synthetic binary datasets, the car loan one by default
(reference and analysis, with the analysis targets), as one table: id, timestamp, score
(y_pred_proba), y_pred, y_true, period, and the features. work_from_home is the one
bench/heldout_backtest.py replays the alert rules on.
estimate: NannyML's CBPE fitted on REFERENCE (score, y_pred, y_true), estimating each
window of WINDOWS (window, score, y_pred); prints {window: {metric: value}} as JSON. The
tests run it too (tests/test_performance_estimated.py), on the demo's rows.
"""

import json
import os
import sys
import warnings

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
warnings.filterwarnings("ignore")

import nannyml as nml  # noqa: E402
import pandas as pd  # noqa: E402

METRICS = {"roc_auc": "roc_auc", "average_precision": "pr_auc", "accuracy": "accuracy",
           "precision": "precision", "recall": "recall", "f1": "f1"}


DATASETS = {"car_loan": (nml.load_synthetic_car_loan_dataset, "repaid"),
            "work_from_home": (nml.load_synthetic_binary_classification_dataset, "work_home_actual")}


def export(path: str, dataset: str = "car_loan") -> None:
    load, target = DATASETS[dataset]
    reference, analysis, targets = load()
    analysis = analysis.merge(targets, on="id")
    rows = pd.concat([reference.assign(period="reference"), analysis.assign(period="analysis")])
    rows = rows.rename(columns={"y_pred_proba": "score", target: "y_true"})
    features = [c for c in rows.columns if c not in ("id", "timestamp", "score", "y_pred", "y_true", "period")]
    rows[["id", "timestamp", "score", "y_pred", "y_true", "period", *features]].to_parquet(path, index=False)


def estimate(reference_path: str, windows_path: str) -> None:
    reference = pd.read_parquet(reference_path)
    windows = pd.read_parquet(windows_path)
    estimator = nml.CBPE(y_pred_proba="score", y_pred="y_pred", y_true="y_true",
                         problem_type="classification_binary", metrics=list(METRICS), chunk_number=1)
    estimator.fit(reference)
    out = {}
    for window, rows in windows.groupby("window"):
        frame = estimator.estimate(rows[["score", "y_pred"]].reset_index(drop=True)).to_df()
        frame = frame[frame[("chunk", "period")] == "analysis"]   # the result repeats the reference's chunk
        out[str(window)] = {ours: float(frame[(theirs, "value")].iloc[0]) for theirs, ours in METRICS.items()}
    print(json.dumps({"needs_calibration": bool(estimator.needs_calibration), "windows": out}))


if __name__ == "__main__":
    {"export": export, "estimate": estimate}[sys.argv[1]](*sys.argv[2:])
