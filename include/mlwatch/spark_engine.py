"""The dbt project on Apache Spark: the same models, over the same inputs, in this process.

mlwatch's warehouse is DuckDB. The dbt project keeps its DuckDB-only SQL behind dispatch
macros (dbt/macros/spark.sql holds the Spark versions), so it also runs on Spark through
dbt-spark in session mode: a local SparkSession in this Python process, no cluster, no
server. This module

  1. starts that session (local[2], few shuffle partitions, a modest driver: the machine
     has two cores),
  2. copies the tables the project reads as sources (schemas raw, quarantine and ops) from
     a DuckDB warehouse, opened read-only, into Spark tables of the same schema and name
     (through Parquet files that DuckDB writes),
  3. runs dbt with the spark target of dbt/profiles.yml for a run date and first window
     end, with the same --vars as transform.build gives the DuckDB run, and
  4. hands the resulting tables back (marts as pyarrow tables) for comparison.

It needs pyspark and dbt-spark (requirements.txt) and a Java 17+ runtime. pyspark stays
inside the functions here: its shell helpers end a `python -c` interpreter that imports
some of its modules, and a JVM is not something to start on import.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import yaml

from mlwatch.config import Config
from mlwatch.transform import TransformError, dbt_args, invoke, project_dir

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

# Spark settings for one small shared machine. ANSI mode is off as in the spark target of
# dbt/profiles.yml (see dbt/macros/spark.sql).
SESSION_SETTINGS = {
    "spark.master": "local[2]",
    "spark.driver.memory": "2g",
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "2",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "false",
    "spark.sql.catalogImplementation": "in-memory",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.sources.partitionOverwriteMode": "static",
}


@dataclass
class SparkRun:
    """What a Spark run of the dbt project did."""

    session: "SparkSession"
    work_dir: Path
    loaded: dict[str, int] = field(default_factory=dict)       # schema.table -> rows copied
    model_seconds: dict[str, float] = field(default_factory=dict)
    load_seconds: float = 0.0
    dbt_seconds: float = 0.0

    def table(self, schema: str, name: str) -> "pa.Table":
        return self.session.table(f"{schema}.{name}").toArrow()

    def mart(self, name: str) -> "pa.Table":
        return self.table("marts", name)


def start_session(work_dir: Path, *, settings: dict[str, str] | None = None) -> "SparkSession":
    """A local SparkSession whose tables live under work_dir (an in-memory catalog).

    dbt-spark's session mode calls SparkSession.builder.getOrCreate(), so it runs in this
    session. Java 17 or newer must be on the PATH (or JAVA_HOME).
    """
    # Loopback only: no lookup of the machine's outside address.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    work_dir.mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.appName("mlwatch-dbt")
    for key, value in {**SESSION_SETTINGS, **(settings or {}),
                       "spark.sql.warehouse.dir": str(work_dir / "spark-warehouse"),
                       "spark.local.dir": str(work_dir / "spark-local"),
                       # dbt-spark asks for Hive support; should a metastore ever start, its
                       # Derby files go here rather than into the working directory.
                       "spark.driver.extraJavaOptions": f"-Dderby.system.home={work_dir / 'derby'}"}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def stop_session(session: "SparkSession") -> None:
    """Stop the session and end the JVM that pyspark started for it.

    SparkSession.stop() leaves the Java gateway process running until Python exits; the
    gateway ends when its stdin (a pipe from this process) closes.
    """
    from pyspark import SparkContext

    session.stop()
    gateway = SparkContext._gateway
    if gateway is None:
        return
    try:
        gateway.shutdown()
    finally:
        proc = getattr(gateway, "proc", None)
        if proc is not None:
            if proc.stdin:
                proc.stdin.close()
            try:
                proc.wait(timeout=60)
            except Exception:  # noqa: BLE001 - still running: end the process we started
                proc.kill()
        SparkContext._gateway = None
        SparkContext._jvm = None


# Schemas the dbt project builds. A source declared in one of them (marts.alerts, which
# mlwatch writes from Python) is documentation, not an input of any model.
MODEL_SCHEMAS = {"staging", "intermediate", "marts"}


def _source_tables() -> dict[str, list[str]]:
    """Schema -> tables the dbt project reads as sources (dbt/models/staging/_sources.yml)."""
    declared: dict[str, list[str]] = {}
    for path in (project_dir() / "models").rglob("*.yml"):
        for source in (yaml.safe_load(path.read_text()) or {}).get("sources", []) or []:
            schema = source.get("schema", source["name"])
            if schema in MODEL_SCHEMAS:
                continue
            declared.setdefault(schema, []).extend(t["name"] for t in source.get("tables", []))
    return declared


def load_sources(session: "SparkSession", warehouse: Path, work_dir: Path) -> dict[str, int]:
    """Copy the source tables from the DuckDB file (read-only) into Spark tables.

    DuckDB writes each table as a Parquet file under work_dir/sources, and Spark registers
    it as a table of the same schema and name over that file. Naive DuckDB TIMESTAMPs
    read as Spark TIMESTAMP_NTZ (no time zone, as in DuckDB). A declared source the
    warehouse lacks is skipped (dbt then fails on it, as it would on DuckDB).
    """
    import duckdb

    loaded: dict[str, int] = {}
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        existing = {(s, t) for s, t in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables").fetchall()}
        for schema, tables in sorted(_source_tables().items()):
            session.sql(f"CREATE DATABASE IF NOT EXISTS `{schema}`")
            for table in sorted(set(tables)):
                if (schema, table) not in existing:
                    log.warning("source %s.%s is not in %s", schema, table, warehouse)
                    continue
                folder = work_dir / "sources" / schema / table
                folder.mkdir(parents=True, exist_ok=True)
                for old in folder.glob("*.parquet"):
                    old.unlink()
                path = folder / "data.parquet"
                con.execute(f"COPY (SELECT * FROM \"{schema}\".\"{table}\") TO '{path}' (FORMAT parquet)")
                session.sql(f"DROP TABLE IF EXISTS `{schema}`.`{table}`")
                session.sql(f"CREATE TABLE `{schema}`.`{table}` USING parquet LOCATION '{folder}'")
                loaded[f"{schema}.{table}"] = con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()[0]
    finally:
        con.close()
    return loaded


def run_dbt(config: Config, run_date: dt.date, first_window_end: dt.date | None = None, *,
            work_dir: Path, command: str = "run", select: str | None = None,
            progress: Callable[[str], None] | None = None) -> dict[str, float]:
    """dbt `command` (run or build) with the spark target, for the run's dates; seconds per model.

    The session must exist (start_session): dbt-spark attaches to it.
    """
    first_window_end = first_window_end or run_date
    args = dbt_args(command, config, work_dir / "dbt", select=select, target="spark")
    timings, failure = invoke(args, config, run_date, first_window_end, progress=progress)
    if failure is not None:
        raise TransformError(f"dbt {command} on Spark failed for {run_date}: {failure} "
                             f"(log: {work_dir / 'dbt' / 'logs' / 'dbt.log'})")
    return timings


def build(config: Config, run_date: dt.date, first_window_end: dt.date | None = None, *,
          work_dir: Path, session: "SparkSession | None" = None, command: str = "run",
          progress: Callable[[str], None] | None = None) -> SparkRun:
    """Load the DuckDB warehouse's sources into Spark and run the dbt project there.

    The DuckDB warehouse (config.warehouse) is only read. Returns the session and
    timings; run.mart(name) reads a mart back.
    """
    started = time.monotonic()
    session = session or start_session(work_dir)
    run = SparkRun(session=session, work_dir=work_dir)
    run.loaded = load_sources(session, config.warehouse, work_dir)
    run.load_seconds = time.monotonic() - started
    started = time.monotonic()
    run.model_seconds = run_dbt(config, run_date, first_window_end, work_dir=work_dir,
                                command=command, progress=progress)
    run.dbt_seconds = time.monotonic() - started
    log.info("Spark: sources loaded in %.1fs, dbt %s in %.1fs", run.load_seconds, command, run.dbt_seconds)
    return run
