"""The measured workloads of the benchmark, one per process (see run.py).

Each is started as `python bench/workloads.py NAME WORKDIR` and prints one JSON line
with the seconds its computation took and the process's peak resident memory (VmHWM
from /proc/self/status: the high-water mark of this program's own address space since
it was exec'd; getrusage/wait4's ru_maxrss would also count the parent's memory at
fork, which Linux carries across exec). The mlwatch workloads run in the project's
environment; evidently and nannyml in bench/.venv-competitors (they never enter
requirements.txt).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

NUMERIC = [f"x{i}" for i in range(12)]
CATEGORICAL = [f"c{i}" for i in range(8)]
FEATURES = NUMERIC + CATEGORICAL


class _Cpu:
    """CPU seconds (all threads of this process) between start() and the workload's return.

    Less sensitive than wall time to other work on the machine: on a busy machine a
    process waits for a core, and that wait counts in its wall time only.
    """

    def __init__(self) -> None:
        self.begun = self.seconds = 0.0

    def start(self) -> float:
        self.begun = time.process_time()
        return time.perf_counter()

    def stop(self, started: float) -> float:
        self.seconds = time.process_time() - self.begun
        return time.perf_counter() - started


_cpu = _Cpu()


def _files(work: Path) -> tuple[Path, Path]:
    return (next((work / "landing" / "predictions").glob("dt=*-01/*.parquet")),
            next((work / "landing" / "predictions").glob("dt=*-02/*.parquet")))


def floor(work: Path) -> float:
    """One DuckDB scan of the current day's file: count, min, max and mean of every column."""
    import duckdb

    _, current = _files(work)
    aggregates = ", ".join(
        f"count({c}), min({c}), max({c})" + (f", avg({c})" if c in NUMERIC or c == "score" else "")
        for c in [*FEATURES, "score"])
    con = duckdb.connect()
    started = _cpu.start()
    con.execute(f"SELECT {aggregates} FROM read_parquet('{current}')").fetchall()
    return _cpu.stop(started)


def _config(work: Path):
    from mlwatch.config import load_config

    return load_config(work / "mlwatch.yml")


def mlwatch_drift(work: Path) -> float:
    """Drift of the current day, the reference summarized and its day counted already (a usual night)."""
    import datetime as dt

    from mlwatch.drift import compute
    from mlwatch.warehouse import connect_writer

    config = _config(work)
    day = dt.date.fromisoformat((work / "current_day").read_text().strip())
    with connect_writer(Path(os.environ["MLWATCH_BENCH_WAREHOUSE"])) as con:
        config = config.model_copy(update={"warehouse": Path(os.environ["MLWATCH_BENCH_WAREHOUSE"])})
        started = _cpu.start()
        compute.run(con, config, day, day)
        return _cpu.stop(started)


def mlwatch_drift_first_night(work: Path) -> float:
    """Drift with nothing stored: the reference summarized and both days counted."""
    return mlwatch_drift(work)


def mlwatch_performance(work: Path) -> float:
    """marts.performance for the current day: the SQL dbt runs for it, executed on its own."""
    import duckdb

    sql = (work / "performance.sql").read_text()
    con = duckdb.connect(os.environ["MLWATCH_BENCH_WAREHOUSE"])
    # The session settings of the model's pre-hooks, as dbt ran them (run.performance_session).
    for setting in json.loads((work / "performance_session.json").read_text()):
        con.execute(setting)
    started = _cpu.start()
    con.execute(f"CREATE TEMP TABLE measured AS {sql}")
    return _cpu.stop(started)


def _frames(work: Path):
    import pandas as pd

    reference, current = _files(work)
    columns = [*FEATURES, "score"]
    return pd.read_parquet(reference, columns=columns), pd.read_parquet(current, columns=columns)


def evidently(work: Path) -> float:
    from evidently import Dataset, DataDefinition, Report
    from evidently.presets import DataDriftPreset

    reference, current = _frames(work)
    definition = DataDefinition(numerical_columns=[*NUMERIC, "score"], categorical_columns=CATEGORICAL)
    started = _cpu.start()
    Report([DataDriftPreset()]).run(Dataset.from_pandas(current, data_definition=definition),
                                    Dataset.from_pandas(reference, data_definition=definition))
    return _cpu.stop(started)


def nannyml(work: Path) -> float:
    import nannyml as nml

    reference, current = _frames(work)
    started = _cpu.start()
    calculator = nml.UnivariateDriftCalculator(
        column_names=[*FEATURES, "score"],
        treat_as_categorical=CATEGORICAL,
        continuous_methods=["kolmogorov_smirnov", "jensen_shannon", "wasserstein"],
        categorical_methods=["chi2", "jensen_shannon"],
        chunk_number=1,
    )
    calculator.fit(reference)
    calculator.calculate(current)
    return _cpu.stop(started)


WORKLOADS = {f.__name__: f for f in (floor, mlwatch_drift, mlwatch_drift_first_night, mlwatch_performance,
                                     evidently, nannyml)}

def peak_rss_mb() -> float:
    """This process's peak resident set since exec, in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource  # not Linux: the best available, may include the parent's memory at fork

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    name, work = sys.argv[1], Path(sys.argv[2])
    seconds = WORKLOADS[name](work)
    print(json.dumps({"workload": name, "seconds": seconds, "cpu_seconds": _cpu.seconds,
                      "peak_rss_mb": peak_rss_mb()}))
