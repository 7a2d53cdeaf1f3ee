"""Is a night's cost flat in history? The same traffic every day, nights after H1 and H2 days.

    .venv/bin/python bench/history.py --rows 50000 --after 15 60 --json bench/results-history.json

Flat traffic of --rows predictions a day for one binary model with two segment
columns, labels arriving 1 to --delay days late (uniformly), `label_delay_days: --delay`,
windows 1/7/30 and a 14-day reference period. For each H in --after, a warehouse is
brought to the night before day H+1 (`mlwatch backfill` of the first H days, untimed),
then that night runs as a user runs it (`mlwatch run --date`, its own process): the
table shows its wall time and peak RSS (the process tree's high-water mark, from
`/usr/bin/time`-style wait4 accounting of the child). Issue 21's bar: the night after
60 days costs at most 1.3x the night after 15.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FIRST_DAY = dt.date(2026, 1, 1)
MLWATCH = REPO / ".venv" / "bin" / "mlwatch"


def make_day(day: dt.date, rows: int, delay: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One day's predictions and their labels (each with the day it lands)."""
    rng = np.random.default_rng(seed)
    region = rng.choice([f"r{k}" for k in range(8)], rows)
    channel = rng.choice(["web", "app", "pos"], rows, p=[0.5, 0.3, 0.2])
    x = rng.normal(0, 1, rows)
    z = 1.5 * x + (channel == "app") * 0.5 + rng.normal(0, 1, rows) - 2
    score = 1 / (1 + np.exp(-z))
    at = pd.Timestamp(day) + pd.to_timedelta(np.sort(rng.uniform(0, 86_000, rows)), unit="s")
    ids = pd.Series(np.arange(rows)).astype(str).radd(f"h{day:%Y%m%d}-")
    predictions = pd.DataFrame({
        "prediction_id": ids, "model_name": "flat", "model_version": "v1",
        "event_at": at - pd.Timedelta(seconds=2), "predicted_at": at, "score": score,
        "x": x, "region": region, "channel": channel})
    late = rng.integers(1, delay + 1, rows)
    y = (rng.random(rows) < 1 / (1 + np.exp(-(z + rng.normal(0, 0.5, rows))))).astype(int).astype(str)
    labels = pd.DataFrame({"prediction_id": ids, "model_name": "flat", "label": y,
                           "labeled_at": at.normalize() + pd.to_timedelta(late, unit="D") + pd.Timedelta(hours=3)})
    return predictions, labels


def write_landing(work: Path, sizes: list[int], delay: int) -> None:
    """A partition per day from FIRST_DAY, sizes[i] predictions on day i, and the labels
    landing each day."""
    pending: list[pd.DataFrame] = []
    for i, rows in enumerate(sizes):
        day = FIRST_DAY + dt.timedelta(days=i)
        predictions, labels = make_day(day, rows, delay, seed=i)
        _write(work, "predictions", day, predictions)
        pending.append(labels)
        landing = pd.concat(pending)
        today = landing["labeled_at"].dt.date == day
        if today.any():
            _write(work, "labels", day, landing[today])
        pending = [landing[~today]]


def _write(work: Path, feed: str, day: dt.date, frame: pd.DataFrame) -> None:
    folder = work / "landing" / feed / f"dt={day}"
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / "part.parquet", index=False)


def write_config(work: Path, delay: int) -> Path:
    config = {
        "landing": str(work / "landing"), "warehouse": str(work / "warehouse" / "history.duckdb"),
        "reports": str(work / "reports"),
        "models": {"flat": {
            "task": "binary_classification", "label_delay_days": delay, "windows": [1, 7, 30],
            "segments": ["region", "channel"],
            "reference": {"start": str(FIRST_DAY), "end": str(FIRST_DAY + dt.timedelta(days=13))},
            "features": {"x": {"type": "numeric"}, "region": {"type": "categorical"}},
        }},
    }
    path = work / "mlwatch.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def timed(command: list[str], cwd: Path) -> dict:
    """Wall time and the process tree's peak RSS of one command (its own children only)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode not in (0, 1):       # 1: alerts left undelivered is not a failure here
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    # ru_maxrss of RUSAGE_CHILDREN is the largest single child so far: only meaningful
    # when this child is the largest, hence one measured command per process (see main).
    return {"seconds": round(wall, 2), "peak_rss_mb": round(peak / 1024, 1) if peak > before else None}


def night_after(work: Path, history: int, delay: int) -> dict:
    """Bring a warehouse to day `history`, then time the night of day history+1."""
    here = work / f"after-{history}"
    shutil.rmtree(here, ignore_errors=True)
    here.mkdir(parents=True)
    config = write_config(here, delay)
    night = FIRST_DAY + dt.timedelta(days=history)
    (here / "landing").mkdir()
    for feed in ("predictions", "labels"):
        (here / "landing" / feed).mkdir()
        for folder in sorted((work / "landing" / feed).iterdir()):
            if dt.date.fromisoformat(folder.name[3:]) <= night:
                os.symlink(folder, here / "landing" / feed / folder.name)
    subprocess.run([str(MLWATCH), "backfill", "--start", str(FIRST_DAY),
                    "--end", str(night - dt.timedelta(days=1)), "--no-backtest", "-c", str(config)],
                   cwd=here, check=True, capture_output=True)
    # The measured night in a process of its own, so that its peak RSS is its own.
    measured = subprocess.run([sys.executable, __file__, "--measure", str(here), str(night)],
                              capture_output=True, text=True, check=True)
    return {"history_days": history, "night": str(night), **json.loads(measured.stdout)}



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--delay", type=int, default=45)
    parser.add_argument("--after", type=int, nargs="+", default=[15, 60])
    parser.add_argument("--work", type=Path, default=HERE / "work-history")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        here, night = Path(args.measure[0]), args.measure[1]
        print(json.dumps(timed([str(MLWATCH), "run", "--date", night, "-c", str(here / "mlwatch.yml")], here)))
        return
    days = max(args.after) + 1
    marker = args.work / f"landing-{args.rows}-{days}-{args.delay}"
    if not marker.exists():
        shutil.rmtree(args.work, ignore_errors=True)
        print(f"writing {days} days of {args.rows:,} predictions ...", flush=True)
        write_landing(args.work, [args.rows] * days, args.delay)
        marker.touch()
    results = []
    for history in args.after:
        print(f"night after {history} days of history ...", flush=True)
        results.append(night_after(args.work, history, args.delay))
        print(f"  {results[-1]}", flush=True)
    first, last = results[0], results[-1]
    ratio = last["seconds"] / first["seconds"]
    print(f"\nnight after {last['history_days']} days / after {first['history_days']}: {ratio:.2f}x "
          f"(bar: 1.3x); peak RSS {first['peak_rss_mb']} MB and {last['peak_rss_mb']} MB")
    if args.json:
        args.json.write_text(json.dumps({"rows": args.rows, "delay": args.delay, "nights": results,
                                         "ratio": round(ratio, 2)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
