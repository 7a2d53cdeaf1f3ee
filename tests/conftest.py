"""Test environment: Airflow in a throwaway home, no Slack unless a test starts one.

Airflow reads its configuration from the environment when it is first imported, so
the variables are set here, before any test module imports it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="mlwatch-airflow-"))
os.environ.update({
    "AIRFLOW_HOME": str(_AIRFLOW_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__PARALLELISM": "2",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
    "DO_NOT_TRACK": "1",
    "MLWATCH_WRITER_WAIT_SECONDS": "120",
})
for variable in ("MLWATCH_CONFIG", "MLWATCH_SLACK_TOKEN", "MLWATCH_SLACK_BASE_URL", "MLWATCH_LANDING",
                 "MLWATCH_WAREHOUSE", "MLWATCH_REPORTS", "AIRFLOW_CONN_SLACK_API_DEFAULT"):
    os.environ.pop(variable, None)

# A pytest-xdist worker's __main__ (execnet's) has neither __spec__ nor __file__, which
# pyspark.sql.connect, imported by Great Expectations, takes for a doctest run: it calls
# sys.exit(0). Under pytest itself, and under mlwatch or Airflow, __main__ has a file.
_main = sys.modules["__main__"]
if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
    _main.__file__ = "<pytest-xdist worker>"

from mlwatch.demo.generator import DemoSpec, generate  # noqa: E402

from tests.slack_server import FakeSlack  # noqa: E402

# Small enough to build fast, large enough for every incident to show.
SMALL_DEMO = DemoSpec(fraud_per_day=1500, eta_per_day=800)


# The longest test files, longest first. With two workers (Makefile: pytest -n 2 --dist
# loadfile --no-loadscope-reorder) a worker takes whole files in collection order, so a long
# file started last would finish alone; started first, the rest runs beside it.
SLOWEST_FIRST = ("test_demo_alerts.py", "test_backtest.py", "test_spark_parity.py", "test_scheduler_postgres.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = item.path.name
        return SLOWEST_FIRST.index(name) if name in SLOWEST_FIRST else len(SLOWEST_FIRST)
    items.sort(key=rank)          # stable: the other files keep their order


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def demo_landing(tmp_path_factory) -> Path:
    """The demo landing zone at test size (60 days, all incidents), generated once."""
    landing = tmp_path_factory.mktemp("demo") / "landing"
    generate(landing, SMALL_DEMO)
    return landing


# The warehouse tests' configuration keeps 5 of card_fraud's 8 countries: three share '__other__'.
TOP_COUNTRIES = 5
@pytest.fixture(scope="session")
def demo_warehouse(demo_landing, tmp_path_factory):
    """The small demo, backfilled over all its days once; tests only read it."""
    from mlwatch import nightly
    from tests.helpers import write_config

    def edit(data):
        data["models"]["card_fraud"]["segment_top_k"] = TOP_COUNTRIES
    config = write_config(tmp_path_factory.mktemp("warehouse"), demo_landing, edit=edit)
    # The marts only: the alert backtest is tests/test_backtest.py's and tests/test_demo_alerts.py's.
    nightly.backfill(config, SMALL_DEMO.start, SMALL_DEMO.end, backtest=False)
    return config


@pytest.fixture
def fake_slack(monkeypatch):
    """A local Slack Web API; MLWATCH_SLACK_TOKEN and MLWATCH_SLACK_BASE_URL point at it."""
    server = FakeSlack().start()
    monkeypatch.setenv("MLWATCH_SLACK_TOKEN", server.token)
    monkeypatch.setenv("MLWATCH_SLACK_BASE_URL", server.base_url)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def airflow_db():
    """Airflow's metadata database (SQLite) for dag.test()."""
    from airflow.utils import db

    db.resetdb()
    return _AIRFLOW_HOME
