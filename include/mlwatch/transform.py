"""Build the warehouse with dbt (dbt-duckdb), invoked in-process through dbtRunner.

mlwatch hands dbt the configuration and the dates as --vars; the project in dbt/ never
reads the YAML itself, so the same project runs on another adapter with the same vars.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from mlwatch import cte_injection
from mlwatch.config import Config
from mlwatch.errors import MlwatchError
from mlwatch.metric_catalog import metric

log = logging.getLogger(__name__)

# dbtRunner is not safe for concurrent invocations in one process.
_DBT_LOCK = threading.Lock()


class TransformError(MlwatchError):
    exit_code = 1


class _Heartbeat:
    """Names the nodes still running whenever dbt has run one for `every` seconds without
    a word: dbt reports a model when it ends, and at scale the slowest takes minutes."""

    def __init__(self, progress: Callable[[str], None], every: float) -> None:
        self.progress, self.every = progress, every
        self.running: dict[str, float] = {}
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="dbt-heartbeat", daemon=True)

    def started(self, node: str) -> None:
        with self.lock:
            self.running[node] = time.monotonic()

    def finished(self, node: str) -> None:
        with self.lock:
            self.running.pop(node, None)

    def _beat(self) -> None:
        while not self.done.wait(self.every):
            now = time.monotonic()
            with self.lock:
                slow = sorted((node, now - since) for node, since in self.running.items() if now - since >= self.every)
            if slow:
                self.progress("still running " + ", ".join(f"{node} ({seconds:.0f}s)" for node, seconds in slow))

    def __enter__(self) -> "_Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()


# How long a dbt node runs before progress names it as still running, and how often after.
HEARTBEAT_SECONDS = 20.0


def project_dir() -> Path:
    explicit = os.environ.get("MLWATCH_DBT_PROJECT")
    if explicit:
        return Path(explicit)
    # include/mlwatch/transform.py -> repository root / dbt
    return Path(__file__).resolve().parents[2] / "dbt"


def dbt_vars(config: Config) -> dict:
    models = {}
    for name, m in sorted(config.models.items()):
        models[name] = {
            "task": m.task,
            "positive_label": m.positive_label,
            "decision_threshold": m.decision_threshold,
            "label_delay_days": m.label_delay_days,
            "reference_start": m.reference.start.isoformat(),
            "reference_end": m.reference.end.isoformat(),
            "windows": list(m.windows),
            "segments": list(m.segments),
            "segment_top_k": m.segment_top_k,
            "weight_column": m.weight_column,
            "min_labeled_rows": m.min_labeled_rows,
            "ranking": dict(zip(("method", "bins"), m.ranking)),
            "slos": _slos(m),
            "features": {
                f: {"type": s.type, "min": s.min, "max": s.max, "default": s.default,
                    "values": s.values, "critical": s.critical, "cost": s.cost}
                for f, s in sorted(m.features.items())
            },
        }
    return {"models": models, "pipeline": list(config.pipeline),
            "constraint_utilization": config.constraint.saturation_utilization,
            "what_if_factor": config.constraint.what_if_factor}


def _slos(model) -> dict:
    slos = model.slos
    performance = slos.performance
    return {
        "time_to_decision_p95_s": slos.time_to_decision_p95_s,
        "performance_metric": model.performance_metric,
        "performance_higher_is_better": metric(model.task, model.performance_metric).higher_is_better,
        "performance_max_relative_drop": performance.max_relative_drop,
        "performance_min_labeled": performance.min_labeled,
        "performance_window_days": model.alert_window_days,
        "min_feature_coverage": slos.min_feature_coverage,
        "max_data_loss": slos.max_data_loss,
        "max_cost_per_prediction_usd": slos.max_cost_per_prediction_usd,
        "min_label_coverage": slos.min_label_coverage,
    }


@contextlib.contextmanager
def _environment(config: Config, run_date: dt.date, first_window_end: dt.date,
                 backtest_ends: list[tuple[str, dt.date]] | None = None) -> Iterator[None]:
    updates = {
        "MLWATCH_BACKTEST_NIGHT": "" if backtest_ends is None else "1",
        "MLWATCH_BACKTEST_ENDS": ",".join(f"{name}={end.isoformat()}" for name, end in backtest_ends or ()),
        "MLWATCH_WAREHOUSE": str(config.warehouse),
        "MLWATCH_RUN_DATE": run_date.isoformat(),
        "MLWATCH_FIRST_WINDOW_END": first_window_end.isoformat(),
        "MLWATCH_WAREHOUSE_MEMORY_LIMIT": config.warehouse_memory_limit.strip(),
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    saved = {key: os.environ.get(key) for key in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _release_duckdb() -> None:
    """Close the database dbt-duckdb keeps open in this process after a run.

    Otherwise the file stays locked by this process, and a read-only connection to it
    (a different configuration) fails until the process exits.
    """
    import gc

    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
    if env is not None:
        env.close()
    gc.collect()


def artifacts_dir(config: Config) -> Path:
    """Where dbt keeps its target (manifest, compiled SQL) and logs for this warehouse."""
    return config.warehouse.parent / "dbt"


def manifest_path(config: Config) -> Path:
    """dbt's manifest of the last build: the project's models and sources, with their descriptions."""
    return artifacts_dir(config) / "target" / "manifest.json"


def build(config: Config, run_date: dt.date, first_window_end: dt.date | None = None, *,
          select: str | None = None, exclude: str | None = None, progress: Callable[[str], None] | None = None,
          backtest_ends: list[tuple[str, dt.date]] | None = None) -> dict[str, float]:
    """`dbt build` for the run; returns seconds per model. Raises TransformError on failure.

    With `backtest_ends`, a backtest night (mlwatch.backtest): a `dbt run` (the data tests
    run once, in the backfill's build of its last night) that recomputes only the window
    ends the alert rules read that night, its own and these (model, window end) pairs
    (dbt/macros/run_range.sql).
    """
    first_window_end = first_window_end or run_date
    artifacts = artifacts_dir(config)
    args = dbt_args("build" if backtest_ends is None else "run", config, artifacts, select=select, exclude=exclude)
    if backtest_ends is not None:
        # A replayed night's manifest is the last night's too: that build writes it, and
        # writing it every night cost a quarter of a second.
        args.append("--no-write-json")
    started = time.monotonic()
    timings, failure = invoke(args, config, run_date, first_window_end, progress=progress,
                              backtest_ends=backtest_ends)
    log.info("dbt build for %s finished in %.1fs", run_date, time.monotonic() - started)
    if failure is not None:
        hint = (f" DuckDB had warehouse_memory_limit = {config.warehouse_memory_limit} for it: raise that in "
                f"{config.source} (or free memory on the machine)." if "out of memory" in failure.lower() else "")
        raise TransformError(
            f"dbt build failed for {run_date}: {failure}.{hint} "
            f"Details in {artifacts / 'logs' / 'dbt.log'}; fix and rerun `mlwatch run --date {run_date}`."
        )
    return timings


def dbt_args(command: str, config: Config, artifacts: Path, *, select: str | None = None,
             exclude: str | None = None, target: str | None = None) -> list[str]:
    """dbt's command line for this project: `command`, the configuration as --vars, target
    and logs under `artifacts`, quiet; `target` names a profiles.yml target other than the default."""
    args = [
        command,
        "--project-dir", str(project_dir()),
        "--profiles-dir", str(project_dir()),
        *(["--target", target] if target else []),
        "--target-path", str(artifacts / "target"),
        "--log-path", str(artifacts / "logs"),
        "--vars", json.dumps(dbt_vars(config), sort_keys=True),
        "--quiet",
        "--no-use-colors",
    ]
    if select:
        args += ["--select", select]
    if exclude:
        args += ["--exclude", *exclude.split()]
    return args


def invoke(args: list[str], config: Config, run_date: dt.date, first_window_end: dt.date, *,
           progress: Callable[[str], None] | None = None,
           listeners: tuple[Callable, ...] = (),
           backtest_ends: list[tuple[str, dt.date]] | None = None) -> tuple[dict[str, float], str | None]:
    """Run dbt with `args` in this process, for any target: seconds per model, and what
    failed (None when dbt succeeded). `listeners` hear every dbt event too."""
    from dbt.cli.main import dbtRunner

    cte_injection.install()
    timings: dict[str, float] = {}
    failures: list[str] = []
    passed: list[str] = []
    heartbeat = _Heartbeat(progress, HEARTBEAT_SECONDS) if progress else None

    def on_event(event) -> None:
        name = event.info.name
        if heartbeat and name in ("NodeStart", "NodeFinished"):
            node = getattr(getattr(event.data, "node_info", None), "node_name", "") or ""
            (heartbeat.started if name == "NodeStart" else heartbeat.finished)(node)
        if name in ("LogModelResult", "LogTestResult", "LogHookEndLine"):
            data = event.data
            node = getattr(getattr(data, "node_info", None), "node_name", "") or ""
            status = str(getattr(data, "status", "")).lower()
            seconds = float(getattr(data, "execution_time", 0.0) or 0.0)
            if name == "LogModelResult":
                timings[node] = seconds
            if status in ("error", "fail"):
                failures.append(f"{node}: {status}")
            if name == "LogTestResult" and status == "pass":
                passed.append(node)      # counted, not listed: dozens of passes would drown the night's summary
            elif progress and name != "LogHookEndLine":
                progress(f"{node} {status} ({seconds:.1f}s)")
        elif event.info.level == "error":
            failures.append(event.info.msg)

    with _DBT_LOCK, _environment(config, run_date, first_window_end, backtest_ends), \
            heartbeat or contextlib.nullcontext():
        try:
            result = dbtRunner(callbacks=[on_event, *listeners]).invoke(args)
        finally:
            _release_duckdb()
    if progress and passed:
        progress(f"{len(passed)} data tests passed")
    if result.success:
        return timings, None
    return timings, "; ".join(dict.fromkeys(failures)) or str(result.exception or "unknown error")
