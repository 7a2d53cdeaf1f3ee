"""Benchmark: mlwatch's drift and performance for one day against the floor and the tools people use.

    .venv/bin/python bench/run.py --rows 1000000 --repeat 3   # all workloads, best of 3
    .venv/bin/python bench/run.py --rows 20000 --no-competitors

A prediction log of N rows x 20 features (12 numeric, 8 categorical) and a score is
written for a reference day and a current day of the same size, with drift in a few
features. Then, each in its own process (so that peak memory is the workload's own):

  floor                      one DuckDB scan of the current day's Parquet file computing
                             count/min/max/mean of every column: touching the data once
  mlwatch_drift              a usual night: the current day's histograms and every drift
                             statistic (the reference was summarized on an earlier night)
  mlwatch_drift_first_night  the same with nothing stored: reference summary included
  mlwatch_performance        marts.performance for the day: the SQL dbt runs, on its own
  evidently                  DataDriftPreset on the same two days (pandas, loaded first)
  nannyml                    UnivariateDriftCalculator with KS, Jensen-Shannon,
                             Wasserstein, chi-square (pandas, loaded first)

Each workload runs --repeat times, each time in a fresh process (the mlwatch drift
workloads on a fresh copy of their warehouse); the table shows the fastest time and the
highest peak RSS of the repeats. Evidently and NannyML are installed into
bench/.venv-competitors from bench/requirements-competitors.txt on first use (again
when that file changes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from workloads import CATEGORICAL, NUMERIC  # noqa: E402

REFERENCE_DAY = dt.date(2026, 1, 1)
CURRENT_DAY = dt.date(2026, 1, 2)
COMPETITORS = HERE / ".venv-competitors"


def make_day(day: dt.date, rows: int, seed: int, shifted: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    data = {}
    for i, name in enumerate(NUMERIC):
        shift = 0.5 if shifted and i < 3 else 0.0
        data[name] = rng.normal(shift, 1.0 + (0.5 if shifted and i == 3 else 0.0), rows).astype(np.float64)
    for i, name in enumerate(CATEGORICAL):
        p = np.full(10, 0.1)
        if shifted and i == 0:
            p = np.array([0.3, 0.2] + [0.0625] * 8)
        data[name] = rng.choice([f"v{k}" for k in range(10)], rows, p=p)
    z = data["x0"] - 0.5 * data["x4"] + (data["c1"] == "v1") * 0.8 + rng.normal(0, 1, rows)
    data["score"] = 1 / (1 + np.exp(-z))
    seconds = np.sort(rng.uniform(0, 82_000, rows))
    at = pd.Timestamp(day) + pd.to_timedelta(seconds, unit="s")
    ids = pd.Series(np.arange(rows)).astype(str).radd(f"b{day:%m%d}-")
    predictions = pd.DataFrame({"prediction_id": ids, "model_name": "bench", "model_version": "v1",
                                "event_at": at - pd.Timedelta(seconds=1), "predicted_at": at, **data})
    y = (rng.random(rows) < 1 / (1 + np.exp(-(z - 1)))).astype(int).astype(str)
    labels = pd.DataFrame({"prediction_id": ids, "model_name": "bench", "label": y,
                           "labeled_at": at + pd.Timedelta(minutes=30)})
    return predictions, labels


def write_landing(work: Path, rows: int) -> None:
    for day, seed, shifted in ((REFERENCE_DAY, 1, False), (CURRENT_DAY, 2, True)):
        predictions, labels = make_day(day, rows, seed, shifted)
        for feed, frame in (("predictions", predictions), ("labels", labels)):
            folder = work / "landing" / feed / f"dt={day}"
            folder.mkdir(parents=True, exist_ok=True)
            frame.to_parquet(folder / "bench.parquet", index=False)


def write_config(work: Path, ranking_bins: int | None = None) -> None:
    features = {name: {"type": "numeric"} for name in NUMERIC}
    features.update({name: {"type": "categorical"} for name in CATEGORICAL})
    config = {
        "landing": str(work / "landing"), "warehouse": str(work / "warehouse" / "bench.duckdb"),
        "reports": str(work / "reports"),
        "contracts": {"batch_rows": 200_000},
        "models": {"bench": {
            "task": "binary_classification", "label_delay_days": 1, "windows": [1],
            "reference": {"start": str(REFERENCE_DAY), "end": str(REFERENCE_DAY)},
            "features": features,
            **({"ranking_bins": ranking_bins} if ranking_bins else {}),
        }},
    }
    (work / "mlwatch.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    (work / "current_day").write_text(str(CURRENT_DAY))


def prepare(work: Path, *, whole_night: bool = True) -> dict[str, float]:
    """Ingest both days with mlwatch, build the warehouse, keep the compiled performance SQL.

    whole_night=False builds only marts.performance and what it depends on (a quicker
    setup for the smoke test; the benchmark itself always builds every mart).
    """
    from mlwatch import nightly, transform
    from mlwatch.config import load_config

    config = load_config(work / "mlwatch.yml")
    timings = {}
    started = time.perf_counter()
    nightly.step_ingest(config, CURRENT_DAY)
    timings["ingest (both days, with the data contract)"] = time.perf_counter() - started
    # Copy before drift: the first-night workload starts from nothing stored.
    shutil.copy(config.warehouse, work / "first_night.duckdb")
    nightly.step_drift(config, REFERENCE_DAY)       # an earlier night: reference and its day stored
    shutil.copy(config.warehouse, work / "usual_night.duckdb")
    started = time.perf_counter()
    nightly.step_drift(config, CURRENT_DAY)
    if whole_night:
        nightly.step_build(config, CURRENT_DAY)
        timings["whole night after ingest (drift + dbt build of every mart, with dbt's own overhead)"] = \
            time.perf_counter() - started
    else:
        transform.build(config, CURRENT_DAY, select="+performance")
    compiled = transform.artifacts_dir(config) / "target/compiled/mlwatch/models/marts/performance.sql"
    (work / "performance.sql").write_text(compiled.read_text())
    (work / "performance_session.json").write_text(json.dumps(performance_session(config)))
    return timings


def performance_session(config) -> list[str]:
    """The session settings (SET / RESET) marts.performance's pre-hooks apply, as dbt runs them.

    Heard from dbt while it rebuilds the model once more, so that the workload runs the SQL
    under the settings the model has, whatever its hooks become.
    """
    from mlwatch import transform

    statements: list[str] = []

    def listen(event) -> None:
        if event.info.name == "SQLQuery" and event.data.conn_name == "model.mlwatch.performance":
            statements.append(re.sub(r"^\s*/\*.*?\*/\s*", "", event.data.sql, flags=re.S).strip())

    args = transform.dbt_args("run", config, transform.artifacts_dir(config), select="performance")
    _, failure = transform.invoke(args, config, CURRENT_DAY, CURRENT_DAY, listeners=(listen,))
    if failure:
        raise SystemExit(f"rebuilding marts.performance to hear its session settings failed: {failure}")
    settings = []
    for sql in statements:
        if re.match(r"(set|reset)\b", sql, re.IGNORECASE):
            settings.append(sql)
        elif re.match(r"create\b", sql, re.IGNORECASE):   # the model itself: the pre-hooks are over
            break
    if not settings:
        raise SystemExit("marts.performance's pre-hooks set nothing that dbt reported: the benchmark would "
                         "measure its SQL under other settings than a night's. Check bench/run.py against "
                         "dbt/models/marts/performance.sql.")
    return settings


def competitors_python() -> Path:
    """bench/.venv-competitors, created (or brought up to the lock file) with uv if needed."""
    python = COMPETITORS / "bin" / "python"
    lock = HERE / "requirements-competitors.txt"
    marker = COMPETITORS / ".installed-from"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    if python.exists() and marker.exists() and marker.read_text().strip() == digest:
        return python
    print("installing Evidently and NannyML into bench/.venv-competitors ...", flush=True)
    uv = Path(sys.executable).parent / "uv"
    if not uv.exists():
        uv = Path(shutil.which("uv") or "")
    if uv.is_file():
        if not python.exists():
            subprocess.run([str(uv), "venv", "--quiet", "--python", sys.executable, str(COMPETITORS)], check=True)
        subprocess.run([str(uv), "pip", "sync", "--quiet", "--python", str(python), str(lock)], check=True)
    else:  # no uv: plain venv and pip (slower)
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(COMPETITORS)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(lock)], check=True)
    marker.write_text(digest + "\n")
    return python


def measure(python: Path, name: str, work: Path, env: dict[str, str] | None = None) -> dict:
    """Run one workload in its own process; its seconds and its peak resident memory (reported by the child)."""
    process = subprocess.run([str(python), str(HERE / "workloads.py"), name, str(work)],
                             capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO / "include"), **(env or {})})
    if process.returncode != 0:
        raise SystemExit(f"workload {name} failed (exit {process.returncode}):\n{process.stderr[-3000:]}")
    return json.loads(process.stdout.strip().splitlines()[-1])


def repeated(name: str, repeat: int, once: Callable[[], dict]) -> dict:
    """Best time and highest peak RSS of `repeat` fresh runs of a workload."""
    runs = []
    for i in range(repeat):
        runs.append(once())
        print(f"  {name} run {i + 1}/{repeat}: {runs[-1]['seconds']:.3f}s ({runs[-1]['cpu_seconds']:.3f} CPU s), "
              f"peak RSS {runs[-1]['peak_rss_mb']:.0f} MB, load {load_average()}", flush=True)
    return {"workload": name, "seconds": min(r["seconds"] for r in runs),
            "cpu_seconds": min(r["cpu_seconds"] for r in runs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "all_seconds": [r["seconds"] for r in runs],
            "all_cpu_seconds": [r["cpu_seconds"] for r in runs]}


def run_workloads(work: Path, *, repeat: int = 1, competitors: bool = True,
                  competitor_repeat: int | None = None) -> list[dict]:
    """Every workload against a prepared work folder (see prepare)."""
    own = Path(sys.executable)
    results = [repeated("floor", repeat, lambda: measure(own, "floor", work))]
    for name, copy in (("mlwatch_drift", "usual_night"), ("mlwatch_drift_first_night", "first_night")):
        def once(name=name, copy=copy) -> dict:
            scratch = work / f"{copy}-run.duckdb"   # drift writes: every run starts from the same state
            shutil.copy(work / f"{copy}.duckdb", scratch)
            try:
                return measure(own, name, work, {"MLWATCH_BENCH_WAREHOUSE": str(scratch)})
            finally:
                scratch.unlink(missing_ok=True)
                scratch.with_name(scratch.name + ".wal").unlink(missing_ok=True)
                scratch.with_name(scratch.name + ".lock").unlink(missing_ok=True)
        results.append(repeated(name, repeat, once))
    results.append(repeated("mlwatch_performance", repeat, lambda: measure(
        own, "mlwatch_performance", work, {"MLWATCH_BENCH_WAREHOUSE": str(work / "warehouse" / "bench.duckdb")})))
    if competitors:
        python = competitors_python()
        for name in ("evidently", "nannyml"):
            results.append(repeated(name, competitor_repeat or repeat, lambda name=name: measure(python, name, work)))
    return results


def summarize(results: list[dict]) -> dict:
    """The figures the issue asks for: mlwatch drift + performance against the floor and the competitors."""
    by_name = {r["workload"]: r for r in results}
    floor = by_name["floor"]["seconds"]
    drift, performance = by_name["mlwatch_drift"], by_name["mlwatch_performance"]
    mlwatch = drift["seconds"] + performance["seconds"]
    mlwatch_cpu = drift["cpu_seconds"] + performance["cpu_seconds"]
    summary = {"floor_seconds": floor, "mlwatch_seconds": mlwatch, "mlwatch_x_floor": mlwatch / floor,
               "floor_cpu_seconds": by_name["floor"]["cpu_seconds"], "mlwatch_cpu_seconds": mlwatch_cpu,
               "mlwatch_peak_rss_mb": max(drift["peak_rss_mb"], performance["peak_rss_mb"],
                                          by_name["mlwatch_drift_first_night"]["peak_rss_mb"])}
    # The competitors fit their reference every time; mlwatch summarizes it once and stores it.
    summary["mlwatch_first_night_seconds"] = by_name["mlwatch_drift_first_night"]["seconds"] + performance["seconds"]
    for name in ("evidently", "nannyml"):
        if name in by_name:
            summary[f"{name}_x_mlwatch"] = by_name[name]["seconds"] / mlwatch
            summary[f"{name}_x_mlwatch_first_night"] = by_name[name]["seconds"] / summary["mlwatch_first_night_seconds"]
            summary[f"{name}_cpu_x_mlwatch_cpu"] = by_name[name]["cpu_seconds"] / mlwatch_cpu
    return summary


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def wait_for_load(limit: float, timeout: float, poll: float = 60) -> bool:
    """Wait (up to timeout seconds) until the 1-minute load average is under limit; True if it is."""
    deadline = time.monotonic() + timeout
    while os.getloadavg()[0] >= limit:
        if time.monotonic() >= deadline:
            print(f"load average still {load_average()} after {timeout:.0f}s: measuring anyway", flush=True)
            return False
        print(f"load average {load_average()}: waiting for the 1-minute average to fall under {limit} ...",
              flush=True)
        time.sleep(poll)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=HERE / "work")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each workload; the fastest is reported")
    parser.add_argument("--competitor-repeat", type=int, help="runs of Evidently and NannyML (default: --repeat)")
    parser.add_argument("--no-competitors", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--wait-for-load", type=float, metavar="LOAD",
                        help="before measuring, wait until the 1-minute load average is under LOAD")
    parser.add_argument("--wait-timeout", type=float, default=1500, help="longest wait for --wait-for-load (s)")
    parser.add_argument("--ranking-bins", type=int, metavar="B",
                        help="configure the model with ranking_bins: B (binned ROC/PR AUC; default exact)")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse a work folder prepared for the same --rows and --ranking-bins instead of writing it again")
    args = parser.parse_args()

    work = args.work.resolve()
    prepared = work / "prepared.json"
    wanted = {"rows": args.rows, "ranking_bins": args.ranking_bins}
    if args.reuse and prepared.exists() and {k: json.loads(prepared.read_text()).get(k) for k in wanted} == wanted:
        print(f"reusing the {args.rows:,}-row work folder {work}", flush=True)
        informative = json.loads(prepared.read_text())["informative"]
    else:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        print(f"writing {args.rows:,} rows x 20 features for two days ...", flush=True)
        write_landing(work, args.rows)
        write_config(work, args.ranking_bins)
        print("ingesting and building with mlwatch (not timed as compute) ...", flush=True)
        informative = prepare(work)
        prepared.write_text(json.dumps({**wanted, "informative": informative}))
    if args.wait_for_load:
        wait_for_load(args.wait_for_load, args.wait_timeout)
    load_before = load_average()
    print(f"measuring (load average {load_before}) ...", flush=True)
    results = run_workloads(work, repeat=args.repeat, competitors=not args.no_competitors,
                            competitor_repeat=args.competitor_repeat)
    load_after = load_average()
    summary = summarize(results)

    floor = summary["floor_seconds"]
    ranking = f"ranking in {args.ranking_bins:,} bins" if args.ranking_bins else "exact ranking"
    print(f"\n{args.rows:,} rows x 20 features per day, {ranking}, {os.cpu_count()} cores, best of {args.repeat}, "
          f"load average (1/5/15 min) {load_before} before, {load_after} after\n")
    print(f"{'workload':28} {'seconds':>9} {'x floor':>8} {'CPU s':>9} {'peak RSS MB':>12}")
    for r in results:
        print(f"{r['workload']:28} {r['seconds']:9.3f} {r['seconds'] / floor:8.1f} {r['cpu_seconds']:9.3f} "
              f"{r['peak_rss_mb']:12.0f}")
    print(f"{'mlwatch drift + performance':28} {summary['mlwatch_seconds']:9.3f} {summary['mlwatch_x_floor']:8.1f} "
          f"{summary['mlwatch_cpu_seconds']:9.3f} {summary['mlwatch_peak_rss_mb']:12.0f}")
    print(f"{'(first night) + performance':28} {summary['mlwatch_first_night_seconds']:9.3f} "
          f"{summary['mlwatch_first_night_seconds'] / floor:8.1f}")
    for name in ("evidently", "nannyml"):
        if f"{name}_x_mlwatch" in summary:
            print(f"mlwatch drift + performance is {summary[f'{name}_x_mlwatch']:.1f}x faster than {name} "
                  f"({summary[f'{name}_x_mlwatch_first_night']:.1f}x on a first night, reference summary included; "
                  f"{summary[f'{name}_cpu_x_mlwatch_cpu']:.1f}x less CPU)")
    for label, seconds in informative.items():
        print(f"(for scale) {label}: {seconds:.1f}s")
    if args.json:
        args.json.write_text(json.dumps({"rows": args.rows, "ranking_bins": args.ranking_bins, "repeat": args.repeat,
                                         "cores": os.cpu_count(),
                                         "load_average_before": load_before, "load_average_after": load_after,
                                         "results": results, "summary": summary, "informative": informative},
                                        indent=1))


if __name__ == "__main__":
    main()
