"""Governance: rollbacks and retrain requests as Airflow asset events, and the promotion gate."""

import datetime as dt
import subprocess
import sys

import duckdb
import pytest

from mlwatch import governance, nightly
from tests.helpers import toy_config, write_toy_day

START = dt.date(2026, 3, 1)


@pytest.fixture(scope="module")
def canary(tmp_path_factory):
    """v1 serves 03-01..03-10 (the reference); from 03-11 a degraded v2 takes 40% of traffic."""
    config = toy_config(tmp_path_factory.mktemp("canary"))
    for offset in range(15):
        day = START + dt.timedelta(days=offset)
        write_toy_day(config.landing, day, n=1200, canary=("v2", 0.4, True) if offset >= 10 else None)
    nightly.backfill(config, START, dt.date(2026, 3, 11))
    for day in range(12, 16):
        nightly.run_night(config, dt.date(2026, 3, day))
    return config


def actions(config, where=""):
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        cursor = con.execute(f'SELECT * FROM governance.actions {where} ORDER BY "at", action_id')
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row)) for row in cursor.fetchall()]


def test_the_gate_rolls_back_a_worse_candidate_once_with_its_evidence(canary):
    gate = actions(canary, f"WHERE actor = '{governance.GATE}'")
    assert [(a["action"], a["from_version"], a["to_version"]) for a in gate][-1] == ("rollback", "v1", "v2")
    assert [a["action"] for a in gate].count("rollback") == 1     # recorded when it changed, not nightly
    assert "v2 worse than v1 in overall" in gate[-1]["reason"]
    assert gate[-1]["asset"] is None                               # a gate decides, people act


def test_rollback_command_records_and_refuses_nonsense(canary):
    folder = str(canary.source).rsplit("/", 1)[0]

    def mlwatch(*args):
        return subprocess.run([sys.executable, "-m", "mlwatch.cli", *args], cwd=folder, capture_output=True,
                              text=True, timeout=300, env={**__import__("os").environ, "MLWATCH_ACTOR": "alice"})

    done = mlwatch("rollback", "--model", "toy", "--to", "v1", "--reason", "v2 loses on BR")
    assert done.returncode == 0, done.stderr
    assert "roll toy back from v2 to v1" in done.stdout and "mlwatch/rollback/toy" in done.stdout
    [action] = actions(canary, "WHERE action = 'rollback' AND actor = 'alice'")
    assert (action["from_version"], action["to_version"], action["asset"], action["emitted_at"]) == \
        ("v2", "v1", "mlwatch/rollback/toy", None)
    refused = mlwatch("rollback", "--model", "toy", "--to", "v9", "--reason", "x")
    assert refused.returncode == 2 and "never served version 'v9'" in refused.stderr
    assert mlwatch("rollback", "--model", "nope", "--to", "v1", "--reason", "x").returncode == 2


def test_governance_dag_emits_the_asset_events(canary, airflow_db, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    from tests.conftest import REPO

    monkeypatch.setenv("MLWATCH_CONFIG", str(canary.source))
    pending = [a["action_id"] for a in actions(canary, "WHERE asset IS NOT NULL AND emitted_at IS NULL")]
    assert pending
    bag = DagBag(dag_folder=str(REPO / "dags"))
    run = bag.dags["mlwatch_governance"].test(logical_date=dt.datetime(2026, 3, 16, tzinfo=dt.timezone.utc))
    assert run.state == "success"
    with create_session() as session:
        events = session.query(AssetEvent).all()
        emitted = {(e.asset.uri, e.extra["action_id"]) for e in events}
    assert {a for _, a in emitted} >= set(pending)
    assert ("mlwatch/rollback/toy", pending[-1]) in emitted or any(uri == "mlwatch/rollback/toy" for uri, _ in emitted)
    assert actions(canary, "WHERE asset IS NOT NULL AND emitted_at IS NULL") == []
