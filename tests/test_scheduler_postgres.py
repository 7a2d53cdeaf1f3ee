"""The nightly DAG under a real Airflow: scheduler, dag-processor and api-server on PostgreSQL.

No docker: the processes run from this virtualenv against a fresh database on the local
PostgreSQL server (default postgresql://postgres@127.0.0.1:5432, trust auth; override with
MLWATCH_TEST_POSTGRES). Skipped when that server cannot be reached.

What it shows:
  1. two nights triggered by logical date run to success under the LocalExecutor, in the
     one-slot duckdb_writer pool, and fill the marts;
  2. the scheduler dies (SIGKILL of its process tree, as when its container is killed)
     while a task of a third night is writing the warehouse; a restarted scheduler resets
     the orphaned task, the night completes, and the warehouse is the one an
     uninterrupted run builds (nightly.run_night over the same nights), with no alert or
     outbox message twice.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import duckdb
import pytest

from tests.conftest import REPO
from tests.helpers import fingerprint, write_config

pytestmark = pytest.mark.scheduler

PG_DSN = os.environ.get("MLWATCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
BIN = Path(sys.executable).parent
DAG_ID = "mlwatch_nightly"
# A 14-day demo at a few hundred predictions a day: the smallest that still has a
# reference week, trailing windows and alerts (a cost budget every night breaks).
DEMO_DAYS = 14
NIGHTS = [dt.date(2026, 8, 12), dt.date(2026, 8, 13)]
CRASH_NIGHT = dt.date(2026, 8, 14)
# Generous: a loaded two-core machine runs a night in 1-3 minutes.
RUN_TIMEOUT = 600
# Columns that record wall-clock time, not results.
CLOCK_COLUMNS = {"marts.alerts": {"notified_at"}, "ops.outbox": {"delivered_at"},
                 "governance.actions": {"at", "emitted_at"}}


def demo_config(folder: Path, landing: Path):
    def edit(data):
        for model in data["models"].values():
            model["reference"] = {"start": "2026-08-01", "end": "2026-08-07"}
            model["windows"] = [1, 7]
            model["slos"]["max_data_loss"] = 0.01
            model["slos"]["max_cost_per_prediction_usd"] = 0.0001   # an alert on every night
    folder.mkdir(parents=True, exist_ok=True)
    return write_config(folder, landing, edit=edit)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"({exc})"
    return "\n".join(text[-lines:])


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture
def metadata_db():
    """A fresh PostgreSQL database for Airflow's metadata; dropped at the end."""
    import psycopg2

    try:
        admin = psycopg2.connect(PG_DSN, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        message = f"no PostgreSQL at {PG_DSN} ({str(exc).strip()}); start it or set MLWATCH_TEST_POSTGRES"
        if os.environ.get("MLWATCH_REQUIRE_SERVICES"):     # CI (.ci/run): a missing server is a failure
            pytest.fail(message)
        pytest.skip(message)
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        admin.close()
        pytest.fail("Airflow 3 on PostgreSQL needs asyncpg for its async engine (postgresql+asyncpg): "
                    "it belongs in requirements.txt")
    admin.autocommit = True
    name = f"mlwatch_sched_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


# ---------------------------------------------------------------- Airflow processes


class Airflow:
    """Airflow's services as subprocesses, each in its own process group."""

    def __init__(self, home: Path, sql_alchemy_conn: str, config_path: Path):
        self.home = home
        self.api_port = free_port()
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "2",
            # Tasks report to the Execution API of the api-server, with JWTs the scheduler
            # signs: every component needs the same URL and secret.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api}/execution/",
            "AIRFLOW__API__BASE_URL": self.api,
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API__WORKERS": "1",
            # The test's REST calls: any caller is admin (local, throwaway instance).
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            # Parse the DAG files once: two cores are for the tasks.
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            # Only the runs the test triggers (the @daily schedule would add today's night).
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            # A dead scheduler's tasks are reset soon after it stops heartbeating
            # (defaults: 30 s threshold, checked every 300 s).
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "20",
            "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "5",
            "MLWATCH_CONFIG": str(config_path),
            "DO_NOT_TRACK": "1",
        }
        for variable in ("MLWATCH_SLACK_TOKEN", "MLWATCH_SLACK_BASE_URL", "AIRFLOW_CONN_SLACK_API_DEFAULT",
                         "MLWATCH_LANDING", "MLWATCH_WAREHOUSE", "MLWATCH_REPORTS"):
            self.env.pop(variable, None)
        self.logs = home / "process-logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        self.starts: dict[str, int] = {}
        self._token: str | None = None

    # -- processes

    def cli(self, *args: str, timeout: float = 300) -> str:
        out = subprocess.run([str(BIN / "airflow"), *args], env=self.env, capture_output=True, text=True,
                             timeout=timeout, cwd=self.home)
        assert out.returncode == 0, f"airflow {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        return out.stdout

    def start(self, name: str, *args: str) -> subprocess.Popen:
        self.starts[name] = self.starts.get(name, 0) + 1
        log = open(self.logs / f"{name}-{self.starts[name]}.log", "w")
        proc = subprocess.Popen([str(BIN / "airflow"), *args], env=self.env, cwd=self.home, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs[name] = proc
        return proc

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal the process's group and every descendant's group: the whole tree."""
        import psutil

        proc = self.procs[name]
        try:
            tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        groups = {proc.pid}
        for p in tree:
            with contextlib.suppress(psutil.Error, OSError):
                groups.add(os.getpgid(p.pid))
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, sig)
        for p in tree:
            with contextlib.suppress(psutil.Error):
                p.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        psutil.wait_procs(tree, timeout=10)

    def stop_all(self) -> None:
        import psutil

        for name in list(self.procs):
            if self.procs[name].poll() is None:
                self.kill(name, signal.SIGTERM)
            self.kill(name, signal.SIGKILL)
        # Anything left that runs with this AIRFLOW_HOME was started here (e.g. a task
        # process orphaned by a killed supervisor).
        for p in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if p.environ().get("AIRFLOW_HOME") == str(self.home):
                    p.kill()

    # -- REST API

    def request(self, method: str, path: str, **kwargs):
        import httpx

        if self._token is None:
            self._token = httpx.get(f"{self.api}/auth/token", timeout=30).raise_for_status().json()["access_token"]
        response = httpx.request(method, f"{self.api}/api/v2{path}", timeout=60,
                                 headers={"Authorization": f"Bearer {self._token}"}, **kwargs)
        return response

    def wait_for(self, what: str, check, timeout: float, interval: float = 1.0):
        deadline = time.monotonic() + timeout
        while True:
            for name, proc in self.procs.items():
                if proc.poll() is not None and name != "scheduler-killed":
                    raise AssertionError(f"{name} exited ({proc.returncode}) while waiting for {what}")
            with contextlib.suppress(Exception):
                result = check()
                if result:
                    return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(interval)

    def trigger(self, day: dt.date) -> str:
        run_id = f"test__{day.isoformat()}"
        response = self.request("POST", f"/dags/{DAG_ID}/dagRuns", json={
            "dag_run_id": run_id, "logical_date": f"{day.isoformat()}T00:00:00+00:00"})
        assert response.status_code in (200, 201), response.text
        return run_id

    def run_state(self, run_id: str) -> str:
        return self.request("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}").raise_for_status().json()["state"]

    def task_instances(self, run_id: str) -> dict[str, dict]:
        data = self.request("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances").raise_for_status().json()
        return {ti["task_id"]: ti for ti in data["task_instances"]}

    def wait_for_run(self, run_id: str, timeout: float = RUN_TIMEOUT) -> dict[str, dict]:
        state = self.wait_for(f"run {run_id} to finish",
                              lambda: (s := self.run_state(run_id)) in ("success", "failed") and s, timeout,
                              interval=3)
        tis = self.task_instances(run_id)
        print(f"run {run_id}: {state}; " + ", ".join(
            f"{t} {ti['state']} {ti.get('duration') or 0:.0f}s" for t, ti in
            sorted(tis.items(), key=lambda kv: kv[1].get("start_date") or "")))
        assert state == "success", {t: ti["state"] for t, ti in tis.items()}
        return tis

    # -- diagnostics

    def report(self) -> str:
        parts = []
        for log in sorted(self.logs.glob("*.log")):
            parts.append(f"===== {log.name} (tail)\n{tail(log)}")
        task_logs = sorted((self.home / "logs").glob(f"dag_id={DAG_ID}/**/*.log"), key=lambda p: p.stat().st_mtime)
        for log in task_logs[-6:]:
            parts.append(f"===== {log.relative_to(self.home)} (tail)\n{tail(log, 40)}")
        return "\n".join(parts)


@pytest.fixture
def tiny_demo(tmp_path_factory) -> Path:
    from mlwatch.demo.generator import DemoSpec, generate

    landing = tmp_path_factory.mktemp("tiny-demo") / "landing"
    generate(landing, DemoSpec(fraud_per_day=400, eta_per_day=200, days=DEMO_DAYS))
    return landing


@pytest.fixture
def airflow(metadata_db, tiny_demo, tmp_path):
    config = demo_config(tmp_path / "airflow-run", tiny_demo)
    home = tmp_path / "airflow-home"
    stack = Airflow(home, metadata_db, config.source)
    stack.config = config
    try:
        yield stack
    finally:
        stack.stop_all()


def start_reference(tmp_path: Path, landing: Path, nights: list[dt.date]):
    """nightly.run_night over the same nights on a separate warehouse, in the background."""
    config = demo_config(tmp_path / "reference", landing)
    # A script file, not `python -c`: pyspark, when installed, exits a `-c` interpreter that imports it.
    script = tmp_path / "reference.py"
    script.write_text(textwrap.dedent(f"""
        import datetime as dt
        from mlwatch import nightly
        from mlwatch.config import load_config
        config = load_config({str(config.source)!r})
        for day in {[d.isoformat() for d in nights]!r}:
            assert nightly.run_night(config, dt.date.fromisoformat(day)).ok, day
            print("reference night", day, "done", flush=True)
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLWATCH_SLACK", "AIRFLOW_CONN_"))}
    log = open(tmp_path / "reference.log", "w")
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    log.close()
    return config, proc


def warehouse_state(config) -> dict[str, tuple]:
    """Row counts and checksums of every table, less what measures time rather than results
    (fingerprint leaves out mlwatch's step timings; here the steps measured are compared).

    Messages link to the report's file: compared with the reports folder taken out.
    """
    warehouse = config.warehouse
    excluded = {**CLOCK_COLUMNS, "ops.outbox": CLOCK_COLUMNS["ops.outbox"] | {"message", "payload"}}
    state = fingerprint(warehouse, exclude_columns=excluded)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        reports = str(Path(config.reports).resolve())
        state["ops.outbox (messages)"] = con.execute(
            "SELECT count(*), sum(hash(message_id, replace(message, ?, ''), replace(payload, ?, ''))) "
            "FROM ops.outbox", [reports, reports]).fetchone()
        if con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'marts' "
                       "AND table_name = 'constraint_ledger'").fetchone()[0]:
            state["marts.constraint_ledger (mlwatch steps)"] = tuple(con.execute(
                "SELECT day, stage, records_in FROM marts.constraint_ledger WHERE source = 'mlwatch' "
                "ORDER BY 1, 2").fetchall())
    return state


def outbox_ids(config) -> list[str]:
    path = Path(config.reports) / "outbox.jsonl"
    return [json.loads(line)["message_id"] for line in path.read_text().splitlines() if line.strip()]


def test_nightly_runs_under_the_scheduler_and_survive_a_scheduler_crash(airflow, tiny_demo, tmp_path):
    started = time.monotonic()
    config = airflow.config
    reference, reference_proc = start_reference(tmp_path, tiny_demo, [*NIGHTS, CRASH_NIGHT])
    try:
        # -- Airflow up: metadata on PostgreSQL, the writer pool, the three services.
        airflow.cli("db", "migrate")
        airflow.start("api-server", "api-server", "--port", str(airflow.api_port), "--host", "127.0.0.1")
        airflow.start("dag-processor", "dag-processor")
        airflow.cli("pools", "set", "duckdb_writer", "1", "one writer of the DuckDB warehouse at a time")
        airflow.start("scheduler", "scheduler")
        airflow.wait_for("the api-server", lambda: airflow.request("GET", "/monitor/health").status_code == 200,
                         timeout=300)
        airflow.wait_for(f"{DAG_ID} to be parsed",
                         lambda: airflow.request("GET", f"/dags/{DAG_ID}").status_code == 200, timeout=300)
        response = airflow.request("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
        assert response.status_code == 200, response.text
        print(f"airflow up after {time.monotonic() - started:.0f}s")

        # -- Two nights, one after the other, as the scheduler runs them.
        for day in NIGHTS:
            tis = airflow.wait_for_run(airflow.trigger(day))
            assert {ti["state"] for ti in tis.values()} == {"success"}
            assert {ti["pool"] for t, ti in tis.items() if t != "all_feeds_loaded"} == {"duckdb_writer"}
            print(f"night {day} done after {time.monotonic() - started:.0f}s")
        with duckdb.connect(str(config.warehouse), read_only=True) as con:
            nights = dict(con.execute(
                "SELECT window_end, count(*) FROM marts.performance GROUP BY 1").fetchall())
            dupes = con.execute("SELECT dedupe_key FROM marts.alerts WHERE status = 'open' "
                                "GROUP BY 1 HAVING count(*) > 1").fetchall()
            opened = con.execute("SELECT count(*) FROM marts.alerts").fetchone()[0]
        assert all(nights.get(day, 0) > 100 for day in NIGHTS), nights
        assert dupes == [] and opened >= 1

        # -- The third night: kill the scheduler while a task holds the warehouse's writer lock.
        run_id = airflow.trigger(CRASH_NIGHT)
        lock = config.warehouse.with_name(config.warehouse.name + ".lock")

        def writing():
            ti = airflow.task_instances(run_id).get("build", {})
            return ti.get("state") == "running" and lock.exists() and lock.read_text().startswith("pid")
        airflow.wait_for("build to be writing the warehouse", writing, timeout=RUN_TIMEOUT, interval=0.3)
        time.sleep(3)   # well inside the build (drift statistics, then dbt)
        airflow.kill("scheduler")
        airflow.procs["scheduler-killed"] = airflow.procs.pop("scheduler")
        killed = airflow.task_instances(run_id)["build"]
        assert killed["state"] == "running", killed   # the task died mid-flight, nobody recorded an end
        print(f"scheduler killed during build (try {killed['try_number']}) "
              f"after {time.monotonic() - started:.0f}s")

        airflow.start("scheduler", "scheduler")
        tis = airflow.wait_for_run(run_id)
        assert tis["build"]["try_number"] > killed["try_number"]   # the orphaned try was reset and ran again
        print(f"night {CRASH_NIGHT} recovered after {time.monotonic() - started:.0f}s")

        # -- The warehouse is the one an uninterrupted run builds.
        assert reference_proc.wait(timeout=RUN_TIMEOUT) == 0, tail(tmp_path / "reference.log")
        reference_log = (tmp_path / "reference.log").read_text()
        assert reference_log.count("reference night") == 3, reference_log[-3000:]
        got, want = warehouse_state(config), warehouse_state(reference)
        assert {k: (got.get(k), want.get(k)) for k in got.keys() | want.keys() if got.get(k) != want.get(k)} == {}
        with duckdb.connect(str(config.warehouse), read_only=True) as con:
            assert con.execute("SELECT count(*) FROM marts.performance WHERE window_end = ?",
                               [CRASH_NIGHT]).fetchone()[0] > 100
            assert con.execute("SELECT count(*) - count(DISTINCT dedupe_key) FROM marts.alerts "
                               "WHERE status = 'open'").fetchone()[0] == 0
            assert con.execute("SELECT count(*) - count(DISTINCT message_id) FROM ops.outbox").fetchone()[0] == 0
        ids = outbox_ids(config)
        assert len(ids) == len(set(ids)) and sorted(ids) == sorted(outbox_ids(reference))
        print(f"total {time.monotonic() - started:.0f}s")
    except BaseException:
        print(airflow.report())
        print(f"===== reference.log (tail)\n{tail(tmp_path / 'reference.log')}")
        raise
    finally:
        if reference_proc.poll() is None:
            os.killpg(reference_proc.pid, signal.SIGKILL)
            reference_proc.wait()
