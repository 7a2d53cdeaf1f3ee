"""Does a night cost what arrived that night? A 1M-row night and a 1,000-row night after it.

    .venv/bin/python bench/night_size.py --json bench/results-night-size.json

Issue 21's must-show 2: after --history days of --rows predictions a day (the traffic of
bench/history.py: one binary model, two segment columns, labels 1 to --delay days late),
the next night brings --big predictions and the night after it --small. Each night runs as
a user runs it (`mlwatch run --date`, its own process: wall time and peak RSS). The floor is
one DuckDB scan of the big day's Parquet file (count, min, max and mean of its columns).
The bars: the big night's marginal cost (minus the small night's) at most 20x the floor;
the small night at most 15 s; peak RSS under 1 GB for both.
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

from history import FIRST_DAY, MLWATCH, write_config, write_landing

HERE = Path(__file__).resolve().parent


def measured_night(here: Path, night: dt.date) -> dict:
    done = subprocess.run([sys.executable, str(HERE / "history.py"), "--measure", str(here), str(night)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def scan_floor(day_folder: Path) -> float:
    """The fastest of three: one DuckDB scan of the day's predictions, touching every column once."""
    con = duckdb.connect()
    sql = ("SELECT count(*), min(score), max(score), avg(score), min(x), max(x), avg(x), min(region), max(region), "
           "min(channel), max(channel), min(prediction_id), max(predicted_at) "
           f"FROM read_parquet('{day_folder}/*.parquet')")
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        con.execute(sql).fetchall()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=10)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--delay", type=int, default=45)
    parser.add_argument("--work", type=Path, default=HERE / "work-night-size")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.work = args.work.resolve()
    shutil.rmtree(args.work, ignore_errors=True)
    sizes = [args.rows] * args.history + [args.big, args.small]
    print(f"writing {args.history} days of {args.rows:,}, then {args.big:,} and {args.small:,} ...", flush=True)
    write_landing(args.work, sizes, args.delay)
    config = write_config(args.work, args.delay)
    big_night = FIRST_DAY + dt.timedelta(days=args.history)
    subprocess.run([str(MLWATCH), "backfill", "--start", str(FIRST_DAY),
                    "--end", str(big_night - dt.timedelta(days=1)), "--no-backtest", "-c", str(config)],
                   cwd=args.work, check=True, capture_output=True)
    big = measured_night(args.work, big_night)
    print(f"  {args.big:,}-row night {big_night}: {big}", flush=True)
    small = measured_night(args.work, big_night + dt.timedelta(days=1))
    print(f"  {args.small:,}-row night: {small}", flush=True)
    floor = scan_floor(args.work / "landing" / "predictions" / f"dt={big_night}")
    marginal = big["seconds"] - small["seconds"]
    result = {"rows": args.rows, "history_days": args.history, "big": args.big, "small": args.small,
              "big_night": big, "small_night": small, "scan_floor_seconds": round(floor, 3),
              "marginal_seconds": round(marginal, 2), "marginal_over_floor": round(marginal / floor, 1)}
    print(f"\nmarginal {marginal:.1f} s = {marginal / floor:.0f}x one scan ({floor:.3f} s; bar 20x); "
          f"small night {small['seconds']} s (bar 15 s); peak RSS {big['peak_rss_mb']} and "
          f"{small['peak_rss_mb']} MB (bar 1,024)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
