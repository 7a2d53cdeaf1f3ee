"""The benchmark (bench/) still runs: its data, mlwatch's preparation, and the floor and
mlwatch workloads at a small N, without Evidently and NannyML (they live in their own
environment). No timing thresholds: only that every workload completes and reports
sane numbers, so the benchmark cannot rot.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import duckdb
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench_run():
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("run")
    finally:
        sys.path.remove(str(BENCH))


def test_benchmark_runs_at_small_n(bench_run, tmp_path):
    rows = 3000
    bench_run.write_landing(tmp_path, rows)
    bench_run.write_config(tmp_path)
    bench_run.prepare(tmp_path, whole_night=False)   # marts.performance and its parents only: quicker
    # The workload runs the model's SQL under its pre-hooks' settings, as dbt ran them.
    session = json.loads((tmp_path / "performance_session.json").read_text())
    assert any("disabled_optimizers" in s for s in session) and any("threads" in s for s in session), session

    results = bench_run.run_workloads(tmp_path, repeat=1, competitors=False)
    by_name = {r["workload"]: r for r in results}
    assert set(by_name) == {"floor", "mlwatch_drift", "mlwatch_drift_first_night", "mlwatch_performance"}
    for r in results:
        assert 0 < r["seconds"] < 600 and 0 < r["cpu_seconds"] < 1200, r
        # The child's own peak (VmHWM), not the parent's: the parent holds dbt, pandas and the data.
        assert 20 < r["peak_rss_mb"] < 4096, r

    summary = bench_run.summarize(results)
    assert summary["mlwatch_seconds"] == pytest.approx(
        by_name["mlwatch_drift"]["seconds"] + by_name["mlwatch_performance"]["seconds"])
    assert summary["mlwatch_x_floor"] > 0
    assert not any(key.startswith(("evidently", "nannyml")) for key in summary)

    # The work the timings stand for was really done: drift statistics for the current day
    # on the usual-night copy, and marts.performance for the day in the warehouse.
    with duckdb.connect(str(tmp_path / "warehouse" / "bench.duckdb"), read_only=True) as con:
        features = con.execute(
            "SELECT count(DISTINCT feature) FROM ops.drift_statistics WHERE window_end = ?",
            [bench_run.CURRENT_DAY]).fetchone()[0]
        assert features == 21                     # 20 features and the score
        drifted = {f for (f,) in con.execute(
            "SELECT DISTINCT feature FROM ops.drift_statistics WHERE window_end = ? AND is_drifted",
            [bench_run.CURRENT_DAY]).fetchall()}
        assert {"x0", "x1", "x2", "c0"} <= drifted  # the shifts write_landing puts in
        auc = con.execute(
            "SELECT value FROM marts.performance WHERE window_end = ? AND metric = 'roc_auc' "
            "AND model_version = '__all__' AND segment = '__all__' AND window_days = 1",
            [bench_run.CURRENT_DAY]).fetchone()
        assert auc is not None and 0.5 < auc[0] < 1
