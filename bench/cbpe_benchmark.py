"""mlwatch's estimated performance against NannyML's CBPE on a public benchmark it was not built on.

    .venv/bin/python bench/cbpe_benchmark.py --json bench/results-cbpe.json

NannyML's synthetic car loan dataset (50,000 reference and 50,000 analysis predictions
of a binary model over 20 months, whose performance drops in the analysis period) goes
through mlwatch as a user's logs would: predictions partitioned by day, each label
landing the day after its prediction, a backfill over every day. Then, for 30-day
windows ending on the analysis period's month ends, marts.performance_estimated is
compared with NannyML's CBPE fitted on the same reference and estimating the same rows,
and with the realized value. NannyML runs from bench/.venv-competitors (bench/run.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import yaml

HERE = Path(__file__).resolve().parent
MLWATCH = Path(sys.executable).parent / "mlwatch"
WINDOW_DAYS = 30
REFERENCE = ("2018-01-01", "2018-10-29")     # the dataset's reference period, whole days


def competitors_python() -> Path:
    sys.path.insert(0, str(HERE))
    try:
        from run import competitors_python as make
    finally:
        sys.path.remove(str(HERE))
    return make()


def write_landing(rows: Path, landing: Path) -> None:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW rows AS SELECT * REPLACE (CAST(timestamp AS TIMESTAMP) AS timestamp) "
                f"FROM read_parquet('{rows}')")
    con.execute(f"""COPY (SELECT 'car-' || id AS prediction_id, 'car_loan' AS model_name, '1' AS model_version,
                    timestamp AS event_at, timestamp AS predicted_at, score, CAST(y_pred AS VARCHAR) AS predicted_label,
                    strftime(timestamp, '%Y-%m-%d') AS dt FROM rows)
                    TO '{landing / "predictions"}' (FORMAT parquet, PARTITION_BY (dt))""")
    con.execute(f"""COPY (SELECT 'car-' || id AS prediction_id, 'car_loan' AS model_name,
                    CAST(CAST(y_true AS INTEGER) AS VARCHAR) AS label, timestamp + INTERVAL 1 DAY AS labeled_at,
                    strftime(timestamp + INTERVAL 1 DAY, '%Y-%m-%d') AS dt FROM rows)
                    TO '{landing / "labels"}' (FORMAT parquet, PARTITION_BY (dt))""")


def write_config(work: Path) -> Path:
    config = {
        "landing": str(work / "landing"), "warehouse": str(work / "warehouse" / "cbpe.duckdb"),
        "reports": str(work / "reports"),
        "models": {"car_loan": {
            "task": "binary_classification", "positive_label": "1", "label_delay_days": 3,
            "windows": [WINDOW_DAYS], "reference": {"start": REFERENCE[0], "end": REFERENCE[1]},
            "min_labeled_rows": 100,
            "slos": {"performance": {"metric": "roc_auc", "window_days": WINDOW_DAYS}},
        }},
    }
    path = work / "mlwatch.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def month_ends(first: dt.date, last: dt.date) -> list[dt.date]:
    ends, day = [], first
    while day <= last:
        following = day + dt.timedelta(days=1)
        if following.month != day.month:
            ends.append(day)
        day = following
    return ends


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=HERE / "work-cbpe")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    (args.work / "landing").mkdir(parents=True)
    python = competitors_python()
    rows = args.work / "rows.parquet"
    subprocess.run([str(python), str(HERE / "cbpe_nannyml.py"), "export", str(rows)], check=True)
    write_landing(rows, args.work / "landing")
    config = write_config(args.work)
    (first, last), = duckdb.sql(f"SELECT min(timestamp::TIMESTAMP)::DATE, max(timestamp::TIMESTAMP)::DATE "
                                f"FROM '{rows}'").fetchall()
    print(f"backfill {first} .. {last} ...", flush=True)
    # The estimates only: no alert backtest (two years of nights).
    done = subprocess.run([str(MLWATCH), "backfill", "--start", str(first), "--end", str(last), "--no-backtest",
                           "-c", str(config)],
                          cwd=args.work, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        sys.exit(f"backfill failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    reference_end = dt.date.fromisoformat(REFERENCE[1])
    ends = [e for e in month_ends(reference_end + dt.timedelta(days=WINDOW_DAYS), last)]
    reference, windows = args.work / "reference.parquet", args.work / "windows.parquet"
    duckdb.sql(f"COPY (SELECT score, y_pred, y_true FROM '{rows}' WHERE period = 'reference') TO '{reference}'")
    ends_list = ", ".join(f"DATE '{e}'" for e in ends)
    duckdb.sql(f"COPY (SELECT CAST(e.window_end AS VARCHAR) AS window, r.score, r.y_pred FROM '{rows}' AS r "
               f"JOIN (SELECT unnest([{ends_list}]) AS window_end) AS e "
               f"ON CAST(r.timestamp::TIMESTAMP AS DATE) BETWEEN e.window_end - {WINDOW_DAYS - 1} AND e.window_end) "
               f"TO '{windows}'")
    theirs = json.loads(subprocess.run([str(python), str(HERE / "cbpe_nannyml.py"), "estimate", str(reference),
                                        str(windows)], capture_output=True, text=True, check=True).stdout)
    con = duckdb.connect(str(args.work / "warehouse" / "cbpe.duckdb"), read_only=True)
    results, worst = [], {}
    for end in ends:
        ours = {metric: (value, realized, reliable) for metric, value, realized, reliable in con.execute(
            "SELECT metric, estimated_value, coalesce(realized_value, 0), is_reliable FROM marts.performance_estimated "
            "WHERE model_name = 'car_loan' AND model_version = '__all__' AND segment = '__all__' "
            "AND window_days = ? AND window_end = ?", [WINDOW_DAYS, end]).fetchall()}
        (realized_auc,) = con.execute(
            "SELECT value FROM marts.performance WHERE model_name = 'car_loan' AND model_version = '__all__' "
            "AND segment = '__all__' AND window_days = ? AND window_end = ? AND metric = 'roc_auc'",
            [WINDOW_DAYS, end]).fetchone()
        nannyml = theirs["windows"][str(end)]
        row = {"window_end": str(end), "realized_roc_auc": realized_auc,
               **{f"{m}_mlwatch": round(ours[m][0], 5) for m in nannyml},
               **{f"{m}_nannyml": round(v, 5) for m, v in nannyml.items()},
               "reliable": bool(ours["roc_auc"][2])}
        for metric, value in nannyml.items():
            worst[metric] = max(worst.get(metric, 0.0), abs(ours[metric][0] - value))
        results.append(row)
        print(f"{end}  ROC AUC mlwatch {ours['roc_auc'][0]:.4f}  NannyML {nannyml['roc_auc']:.4f}  realized "
              f"{realized_auc:.4f}  |  accuracy mlwatch {ours['accuracy'][0]:.4f}  NannyML {nannyml['accuracy']:.4f}")
    print("largest difference from NannyML per metric: "
          + ", ".join(f"{m} {d:.4f}" for m, d in sorted(worst.items()))
          + f" (NannyML calibrated: {theirs['needs_calibration']})")
    if args.json:
        args.json.write_text(json.dumps({"windows": results, "largest_difference": worst,
                                         "nannyml_calibrated": theirs["needs_calibration"]}, indent=1) + "\n")


if __name__ == "__main__":
    main()
