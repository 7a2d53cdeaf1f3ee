"""The alert backtest on a public benchmark mlwatch was not built on (issue 17).

    .venv/bin/python bench/heldout_backtest.py --json bench/results-heldout-backtest.json

NannyML's synthetic binary classification dataset ("work from home": about 40
predictions a day from 2014 to 2021) has a covariate shift from a known moment: from
analysis row 25,000, 2019-04-30 11:02 UTC, distance_from_office, public_transportation_cost
and wfh_prev_workday move, and the monthly ROC AUC falls from the reference's 0.97 to
about 0.96, a 1-2% drop that lasts to the end. On top of it this bench lands, on known
days, what the dataset does not have:

- a time-to-decision saturation, 2019-03-18 .. 2019-03-20: the inference stage runs at
  full utilization with a queue, and decisions come 10-20 minutes after their event
  (the SLO is a p95 of 300 s);
- a cost spike, 2019-06-10 .. 2019-06-11: the compute bill is 25x its usual size
  (0.01 USD a prediction against a 0.002 budget).

Every feed lands as a user's would: predictions and labels (each 1-14 days after its
prediction) partitioned by day, a daily compute bill, hourly stage telemetry. The
history 2016-09-01 .. 2019-02-28 is loaded by a plain backfill (`--no-backtest`; its
first year is the reference); then `mlwatch backfill` replays every night of
2019-03-01 .. 2019-08-31 with its alert backtest, and a copy of the same warehouse runs
that range as a plain backfill, for the backtest's cost. The bench checks each injected
incident's alert opens on its night, the drop pages once and only after it began, and
prints the alert load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import yaml
from cbpe_benchmark import competitors_python   # bench/ is this script's folder

HERE = Path(__file__).resolve().parent
MLWATCH = Path(sys.executable).parent / "mlwatch"

FIRST_DAY = dt.date(2016, 9, 1)
REFERENCE = (FIRST_DAY, dt.date(2017, 8, 30))
HISTORY_END = dt.date(2019, 2, 28)                      # loaded without a backtest
BACKTEST = (dt.date(2019, 3, 1), dt.date(2019, 8, 31))  # replayed night by night
DROP_STARTS = dt.datetime(2019, 4, 30, 11, 2)           # the dataset's analysis row 25,000
SATURATION = (dt.date(2019, 3, 18), dt.date(2019, 3, 20))
COST_SPIKE = (dt.date(2019, 6, 10), dt.date(2019, 6, 11))
LABEL_DELAY_DAYS = 14
PIPELINE = ["features", "inference"]


def _in(column: str, days: tuple[dt.date, dt.date]) -> str:
    return f"CAST({column} AS DATE) BETWEEN DATE '{days[0]}' AND DATE '{days[1]}'"


def write_landing(rows: Path, landing: Path) -> None:
    """The four feeds, one partition a day; every number derives from the row id, so the
    files are the same on every run."""
    con = duckdb.connect()
    con.execute(f"""CREATE VIEW rows AS SELECT * REPLACE (CAST(timestamp AS TIMESTAMP) AS timestamp)
                    FROM read_parquet('{rows}') WHERE CAST(timestamp AS TIMESTAMP) >= DATE '{FIRST_DAY}'""")
    # Decisions take 5-65 s; on the saturation days the queue at inference adds 10-20 minutes.
    con.execute(f"""COPY (
        SELECT 'wfh-' || id AS prediction_id, 'work_from_home' AS model_name, '1' AS model_version,
            timestamp - to_seconds(5 + id % 61 + CASE WHEN {_in('timestamp', SATURATION)} THEN 600 + id % 601 ELSE 0 END)
                AS event_at,
            timestamp AS predicted_at, score, CAST(y_pred AS VARCHAR) AS predicted_label,
            distance_from_office, salary_range, gas_price_per_litre, public_transportation_cost,
            CAST(wfh_prev_workday AS VARCHAR) AS wfh_prev_workday, workday, tenure,
            strftime(timestamp, '%Y-%m-%d') AS dt
        FROM rows) TO '{landing / "predictions"}' (FORMAT parquet, PARTITION_BY (dt))""")
    con.execute(f"""COPY (
        SELECT 'wfh-' || id AS prediction_id, 'work_from_home' AS model_name, CAST(y_true AS VARCHAR) AS label,
            timestamp + to_days(CAST(1 + id % {LABEL_DELAY_DAYS} AS INTEGER)) AS labeled_at,
            strftime(timestamp + to_days(CAST(1 + id % {LABEL_DELAY_DAYS} AS INTEGER)), '%Y-%m-%d') AS dt
        FROM rows) TO '{landing / "labels"}' (FORMAT parquet, PARTITION_BY (dt))""")
    con.execute(f"""COPY (
        SELECT 'work_from_home' AS model_name, 'compute' AS component,
            round(count(*) * CASE WHEN {_in('day', COST_SPIKE)} THEN 0.01 ELSE 0.0004 END, 4) AS cost_usd,
            strftime(day, '%Y-%m-%d') AS dt
        FROM (SELECT CAST(timestamp AS DATE) AS day FROM rows) GROUP BY day
        ) TO '{landing / "costs"}' (FORMAT parquet, PARTITION_BY (dt))""")
    # Hourly telemetry of the two serial stages; the inference stage saturates on the known days.
    con.execute(f"""COPY (
        WITH hours AS (
            SELECT hour AS window_start, count(rows.id) AS records
            FROM (SELECT unnest(generate_series(TIMESTAMP '{FIRST_DAY}',
                                                (SELECT max(timestamp) FROM rows), INTERVAL 1 HOUR)) AS hour) AS h
            LEFT JOIN rows ON date_trunc('hour', rows.timestamp) = h.hour
            GROUP BY hour
        ), stages AS (SELECT unnest(['features', 'inference']) AS stage)
        SELECT stage, window_start, 3600 AS window_seconds, records AS records_in, records AS records_out,
            0 AS records_dropped,
            CASE WHEN stage = 'inference' AND {_in('window_start', SATURATION)} THEN 3564.0
                 WHEN stage = 'inference' THEN 1080.0 ELSE 720.0 END AS busy_seconds,
            1 AS workers,
            CASE WHEN stage = 'inference' AND {_in('window_start', SATURATION)} THEN 40 ELSE 0 END AS queue_depth,
            CASE WHEN stage = 'inference' AND {_in('window_start', SATURATION)} THEN 900000.0 ELSE 800.0 END
                AS p95_latency_ms,
            CAST(NULL AS VARCHAR) AS failure_mode, CAST(NULL AS BIGINT) AS failures,
            strftime(window_start, '%Y-%m-%d') AS dt
        FROM hours, stages
        WHERE window_start < (SELECT max(CAST(timestamp AS DATE)) + 1 FROM rows)
        ) TO '{landing / "stages"}' (FORMAT parquet, PARTITION_BY (dt))""")


def write_config(work: Path, warehouse: Path) -> Path:
    config = {
        "landing": str(work / "landing"), "warehouse": str(warehouse), "reports": str(work / "reports"),
        "slack": {"default_channel": "#wfh-alerts", "alerts_per_day": 5},
        "pipeline": PIPELINE,
        "models": {"work_from_home": {
            "task": "binary_classification", "owner": "@wfh-oncall", "positive_label": "1",
            "label_delay_days": LABEL_DELAY_DAYS,
            "reference": {"start": str(REFERENCE[0]), "end": str(REFERENCE[1])},
            "windows": [7, 30], "segments": ["salary_range"],
            "features": {
                "distance_from_office": {"type": "numeric", "min": 0, "critical": True},
                "salary_range": {"type": "categorical"},
                "gas_price_per_litre": {"type": "numeric", "min": 0},
                "public_transportation_cost": {"type": "numeric", "min": 0},
                "wfh_prev_workday": {"type": "categorical", "values": ["true", "false"]},
                "workday": {"type": "categorical"},
                "tenure": {"type": "numeric", "min": 0},
            },
            "slos": {
                "time_to_decision_p95_s": 300,
                "performance": {"metric": "roc_auc", "max_relative_drop": 0.01, "min_labeled": 500,
                                "window_days": 30},
                "max_cost_per_prediction_usd": 0.002,
            },
        }},
    }
    path = work / f"{warehouse.parent.name}.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def backfill(config: Path, start: dt.date, end: dt.date, *, backtest: bool, work: Path) -> tuple[float, str]:
    """`mlwatch backfill`, timed; its output."""
    started = time.monotonic()
    done = subprocess.run([str(MLWATCH), "backfill", "--start", str(start), "--end", str(end),
                           "--backtest" if backtest else "--no-backtest", "-c", str(config)],
                          cwd=work, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode not in (0, 1):   # 1: the night has open alerts
        sys.exit(f"backfill {start}..{end} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return seconds, done.stdout


def alerts(warehouse: Path) -> list[dict]:
    con = duckdb.connect(str(warehouse), read_only=True)
    cursor = con.execute("""SELECT kind, segment, segment_value, severity, playbook, first_seen, last_seen, status,
                                   resolved_on, origin, title
                            FROM marts.alerts ORDER BY first_seen, kind, segment, segment_value""")
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def checks(found: list[dict]) -> dict[str, bool]:
    """What a user would want to see: each injected incident paged on its first night, and
    the drop paged once, after it began, and not before."""
    def first_seen(kind: str) -> list[dt.date]:
        return [a["first_seen"] for a in found if a["kind"] == kind]

    drops = [a for a in found if a["kind"] in ("performance_drop", "performance_drop_after_release")
             and a["segment"] == "__all__"]
    after = [a for a in drops if a["first_seen"] >= DROP_STARTS.date()]
    return {
        "time_to_decision_breach opens on 2019-03-18": SATURATION[0] in first_seen("time_to_decision_breach"),
        "cost_over_budget opens on 2019-06-10": COST_SPIKE[0] in first_seen("cost_over_budget"),
        "the drop pages once after it began, within 45 days": len(after) == 1 and
            after[0]["first_seen"] <= DROP_STARTS.date() + dt.timedelta(days=45),
        "no drop paged before it began": len(drops) == len(after),
        "no data alert (every feed delivered every day)": not (first_seen("no_data") or first_seen("volume_drop")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=HERE / "work-heldout")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    (work / "landing").mkdir(parents=True)
    rows = work / "rows.parquet"
    subprocess.run([str(competitors_python()), str(HERE / "cbpe_nannyml.py"), "export", str(rows), "work_from_home"],
                   check=True)
    write_landing(rows, work / "landing")
    warehouse, plain = work / "backtest" / "wfh.duckdb", work / "plain" / "wfh.duckdb"
    config, plain_config = write_config(work, warehouse), write_config(work, plain)

    print(f"history {FIRST_DAY} .. {HISTORY_END} (plain backfill) ...", flush=True)
    history_seconds, _ = backfill(config, FIRST_DAY, HISTORY_END, backtest=False, work=work)
    shutil.copytree(warehouse.parent, plain.parent)
    print(f"backtest {BACKTEST[0]} .. {BACKTEST[1]} ...", flush=True)
    backtest_seconds, output = backfill(config, *BACKTEST, backtest=True, work=work)
    print(f"the same range, plain ...", flush=True)
    plain_seconds, _ = backfill(plain_config, *BACKTEST, backtest=False, work=work)

    found = alerts(warehouse)
    for a in found:
        print(f"{a['first_seen']} .. {str(a['resolved_on'] or 'open'):10}  {a['severity']:8} {a['kind']:28} "
              f"{a['segment']}={a['segment_value']}  -> {a['playbook']}  ({a['origin']})")
    load = output[output.find("Alert load"):] if "Alert load" in output else output[-2000:]
    print(load)
    passed = checks(found)
    for name, ok in passed.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    ratio = backtest_seconds / plain_seconds
    nights = (BACKTEST[1] - BACKTEST[0]).days + 1
    print(f"history {history_seconds:.0f} s; {nights} nights: backtest {backtest_seconds:.0f} s, "
          f"plain {plain_seconds:.0f} s, ratio {ratio:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({
            "checks": passed, "alerts": found, "history_seconds": round(history_seconds, 1),
            "backtest_seconds": round(backtest_seconds, 1), "plain_seconds": round(plain_seconds, 1),
            "ratio": round(ratio, 2), "nights": nights, "measured": dt.datetime.now(dt.timezone.utc).isoformat(),
        }, indent=1, default=str) + "\n")
    sys.exit(0 if all(passed.values()) else 1)


if __name__ == "__main__":
    main()
