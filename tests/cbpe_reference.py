"""NannyML's CBPE on the rows mlwatch estimated: run by the bench's competitor Python
(bench/.venv-competitors: NannyML never enters requirements.txt).

    python tests/cbpe_reference.py REFERENCE.parquet WINDOWS.parquet

REFERENCE holds the reference period's labeled predictions (score, y_pred, y_true);
WINDOWS the predictions of the windows to estimate (window, score, y_pred). Prints, per
window, NannyML's estimate of each metric, as JSON.
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


def main(reference_path: str, windows_path: str) -> None:
    reference = pd.read_parquet(reference_path)
    windows = pd.read_parquet(windows_path)
    estimator = nml.CBPE(y_pred_proba="score", y_pred="y_pred", y_true="y_true",
                         problem_type="classification_binary", metrics=list(METRICS), chunk_number=1)
    estimator.fit(reference)
    out = {"needs_calibration": bool(estimator.needs_calibration), "windows": {}}
    for window, rows in windows.groupby("window"):
        frame = estimator.estimate(rows[["score", "y_pred"]].reset_index(drop=True)).to_df()
        frame = frame[frame[("chunk", "period")] == "analysis"]   # the result repeats the reference's chunk
        out["windows"][str(window)] = {
            ours: float(frame[(theirs, "value")].iloc[0]) for theirs, ours in METRICS.items()}
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:])
