"""The Airflow plugin: mlwatch's reports and constraint ledger served inside the Airflow UI.

Most tests drive mlwatch.web's app, mounted under /mlwatch as Airflow mounts it, over the
demo warehouse; the last two load the plugin the way Airflow does (plugins manager, and
the API server with its login).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urljoin

import duckdb
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from mlwatch import report
from mlwatch.warehouse import connect_reader
from mlwatch.web import BUSY_MESSAGE, create_app

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "plugins"
# The demo's stage-saturation incident: feature_tier2 cannot keep up and its queue grows.
INCIDENT_DAY = dt.date(2026, 9, 25)
SECRET = "not-for-the-web"


def _client(config) -> TestClient:
    """The app mounted under /mlwatch, as Airflow's API server mounts the plugin's app."""
    root = FastAPI()
    root.mount("/mlwatch", create_app(lambda: config))
    return TestClient(root)


@pytest.fixture(scope="module")
def site(demo_warehouse, tmp_path_factory):
    """The demo warehouse with a report for the incident day, written to a folder of this module's own.

    A file next to the reports folder stands for what must not be reachable from the web.
    """
    folder = tmp_path_factory.mktemp("site")
    (folder / "secret.txt").write_text(SECRET)
    config = demo_warehouse.model_copy(update={"reports": folder / "reports"})
    with connect_reader(config.warehouse) as con:
        report.write(con, config, INCIDENT_DAY - dt.timedelta(days=1))
        report.write(con, config, INCIDENT_DAY)
    return config


@pytest.fixture(scope="module")
def client(site) -> TestClient:
    return _client(site)


def _ledger_sql(config, day, source):
    with connect_reader(config.warehouse) as con:
        cursor = con.execute("SELECT * FROM marts.constraint_ledger WHERE day = ? AND source = ? "
                             "ORDER BY stage_order NULLS LAST, stage", [day, source])
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, values)) for values in cursor.fetchall()]


def _as_json(value):
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def _constraint_rows(html: str) -> list[str]:
    return re.findall(r'<tr class="constraint" data-stage="([^"]+)"', html)


# --- reports -----------------------------------------------------------------------------

def test_home_opens_the_reports_index_and_daily_pages_load_with_plotly(client):
    home = client.get("/mlwatch/", follow_redirects=False)
    assert home.status_code == 307
    assert home.headers["location"] == "/mlwatch/reports/index.html"

    index = client.get(home.headers["location"])
    assert index.status_code == 200 and "text/html" in index.headers["content-type"]
    links = re.findall(r'href="([^"]+)"', index.text)
    assert f"daily/{INCIDENT_DAY}.html" in links

    page_url = urljoin("http://testserver/mlwatch/reports/index.html", f"daily/{INCIDENT_DAY}.html")
    page = client.get(page_url)
    assert page.status_code == 200
    assert "feature_tier2" in page.text
    script = re.search(r'<script src="([^"]+)"', page.text).group(1)
    plotly = client.get(urljoin(page_url, script))
    assert plotly.status_code == 200
    assert "javascript" in plotly.headers["content-type"] and len(plotly.content) > 1_000_000
    # The page's own relative links land on served files too.
    for link in re.findall(r'href="([^"#]+\.html)"', page.text):
        assert client.get(urljoin(page_url, link)).status_code == 200, link

    summary = client.get(f"/mlwatch/reports/daily/{INCIDENT_DAY}.json")
    assert summary.status_code == 200 and summary.json()["day"] == INCIDENT_DAY.isoformat()
    assert client.get("/mlwatch/reports", follow_redirects=True).url.path == "/mlwatch/reports/"


def test_without_a_report_the_home_page_says_how_to_make_one(site, tmp_path):
    client = _client(site.model_copy(update={"reports": tmp_path / "no-reports-yet"}))
    home = client.get("/mlwatch/", follow_redirects=False)
    assert home.status_code == 200
    assert "mlwatch report --date" in home.text and "mlwatch_nightly" in home.text
    missing = client.get("/mlwatch/reports/index.html")
    assert missing.status_code == 404 and "there is no report yet" in missing.text


@pytest.mark.parametrize("path", [
    "/mlwatch/reports/%2e%2e/secret.txt",
    "/mlwatch/reports/..%2fsecret.txt",
    "/mlwatch/reports/%2e%2e%2fsecret.txt",
    "/mlwatch/reports/daily/%2e%2e/%2e%2e/secret.txt",
    "/mlwatch/reports/daily/..%5c..%5csecret.txt",
    "/mlwatch/reports/%2fetc%2fpasswd",
    "/mlwatch/reports/daily/.plotly.min.js.version",
])
def test_the_reports_folder_cannot_be_left(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert SECRET not in response.text and "root:" not in response.text
    assert "no such report file" in response.text    # refused by the app, not merely unmatched


def test_files_that_are_not_pages_are_not_served(client, site):
    (Path(site.reports) / "outbox.jsonl").write_text('{"text": "a Slack message"}\n')
    assert client.get("/mlwatch/reports/outbox.jsonl").status_code == 404


# --- the constraint ledger ---------------------------------------------------------------

def test_ledger_page_highlights_the_saturated_stage_and_says_the_what_if(client):
    page = client.get("/mlwatch/ledger", params={"day": INCIDENT_DAY.isoformat()})
    assert page.status_code == 200
    assert _constraint_rows(page.text) == ["feature_tier2"]
    assert re.findall(r'data-stage="([^"]+)"', page.text) == [
        "ingest", "feature_tier1", "feature_tier2", "inference", "alerting"]
    what_if = re.search(r'<p class="what-if">(.*?)</p>', page.text, re.S).group(1)
    assert f"The constraint on {INCIDENT_DAY} is <b>feature_tier2</b>" in what_if
    assert "System capacity" in what_if and "the constraint moves to" in what_if
    previous, following = INCIDENT_DAY - dt.timedelta(days=1), INCIDENT_DAY + dt.timedelta(days=1)
    assert f'href="/mlwatch/ledger?day={previous}&amp;source=telemetry"' in page.text
    assert f'href="/mlwatch/ledger?day={following}&amp;source=telemetry"' in page.text
    assert f'href="/mlwatch/reports/daily/{INCIDENT_DAY}.html"' in page.text
    # Latencies with their unit, counts as whole numbers (the report's formatting).
    saturated = re.search(r'data-stage="feature_tier2">(.*?)</tr>', page.text, re.S).group(1)
    cells = re.findall(r'<td class="num">([^<]*)</td>', saturated)
    assert re.fullmatch(r"[\d.,]+ (ms|s|min|h)", cells[6]), cells       # p95 latency
    assert re.fullmatch(r"[\d,]+", cells[7]), cells                     # queue depth


def test_ledger_defaults_to_the_latest_day(client, site):
    with connect_reader(site.warehouse) as con:
        latest = con.execute("SELECT max(day) FROM marts.constraint_ledger WHERE source = 'telemetry'").fetchone()[0]
    assert client.get("/mlwatch/api/ledger").json()["day"] == latest.isoformat()
    page = client.get("/mlwatch/ledger")
    assert page.status_code == 200 and f"Constraint ledger · {latest}" in page.text
    assert 'rel="next"' not in page.text


@pytest.mark.parametrize("source", ["telemetry", "mlwatch"])
def test_api_ledger_returns_the_rows_the_warehouse_holds(client, site, source):
    with connect_reader(site.warehouse) as con:
        day = con.execute("SELECT max(day) FROM marts.constraint_ledger WHERE source = ?", [source]).fetchone()[0]
    if source == "telemetry":
        day = INCIDENT_DAY
    response = client.get("/mlwatch/api/ledger", params={"day": day.isoformat(), "source": source})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert (body["day"], body["source"]) == (day.isoformat(), source)
    expected = [{key: _as_json(value) for key, value in row.items()} for row in _ledger_sql(site, day, source)]
    assert expected and body["rows"] == json.loads(json.dumps(expected))


@pytest.mark.parametrize("url, fragment", [
    ("/mlwatch/ledger?day=2026-13-01", "YYYY-MM-DD"),
    ("/mlwatch/ledger?day=yesterday", "YYYY-MM-DD"),
    ("/mlwatch/ledger?day=2026-9-25", "YYYY-MM-DD"),
    ("/mlwatch/ledger?day=2026-09-25&source=spark", "source must be one of"),
])
def test_bad_requests_get_400_with_what_was_wrong(client, url, fragment):
    response = client.get(url)
    assert response.status_code == 400 and fragment in response.text
    assert "Traceback" not in response.text


def test_the_json_api_answers_errors_in_json(client):
    response = client.get("/mlwatch/api/ledger", params={"day": "25/09/2026"})
    assert response.status_code == 400 and "YYYY-MM-DD" in response.json()["detail"]
    outside = client.get("/mlwatch/api/ledger", params={"day": "2030-01-01"})
    assert outside.status_code == 404 and "it has days" in outside.json()["detail"]


def test_a_missing_warehouse_or_ledger_says_what_to_do(site, tmp_path):
    missing = _client(site.model_copy(update={"warehouse": tmp_path / "nowhere.duckdb"}))
    response = missing.get("/mlwatch/ledger")
    assert response.status_code == 404 and "mlwatch run --date" in response.text

    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    response = _client(site.model_copy(update={"warehouse": empty})).get("/mlwatch/api/ledger")
    assert response.status_code == 404 and "marts.constraint_ledger" in response.json()["detail"]


def test_while_the_nightly_job_writes_the_ledger_answers_503_and_then_recovers(site, tmp_path):
    copy = tmp_path / "mlwatch.duckdb"
    shutil.copyfile(site.warehouse, copy)
    client = _client(site.model_copy(update={"warehouse": copy}))
    writer = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('open', flush=True); "
                               "sys.stdin.read()", str(copy)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "open"
        page = client.get("/mlwatch/ledger")
        assert page.status_code == 503 and BUSY_MESSAGE in page.text and "Traceback" not in page.text
        assert page.headers["retry-after"] == "60"
        api = client.get("/mlwatch/api/ledger")
        assert api.status_code == 503 and api.json() == {"detail": BUSY_MESSAGE}
    finally:
        writer.stdin.close()
        writer.wait(timeout=60)
    assert client.get("/mlwatch/api/ledger").status_code == 200


# --- inside Airflow ----------------------------------------------------------------------

PLUGINS_PROBE = textwrap.dedent("""
    import json, sys
    from airflow import plugins_manager, settings
    from airflow.api_fastapi.core_api.datamodels.plugins import PluginResponse

    apps, _ = plugins_manager.get_fastapi_plugins()
    views, _ = plugins_manager._get_ui_plugins()
    info = [p for p in plugins_manager.get_plugin_info() if p["name"] == "mlwatch"]
    print(json.dumps({
        "plugins_folder": settings.PLUGINS_FOLDER,
        "import_errors": plugins_manager.get_import_errors(),
        "apps": [{k: v for k, v in a.items() if k != "app"} for a in apps],
        "views": views,
        "api": [PluginResponse.model_validate(p).model_dump(mode="json") for p in info],
        "imported": sorted(m for m in ("mlwatch", "mlwatch.web", "duckdb") if m in sys.modules),
    }))
""")


@pytest.mark.slow
def test_airflow_loads_the_plugin_from_the_plugins_folder_without_loading_mlwatch(tmp_path):
    """A fresh interpreter, configured as docker-compose.yml configures Airflow's services."""
    env = {**os.environ, "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
           "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'a.db'}"}
    done = subprocess.run([sys.executable, "-c", PLUGINS_PROBE], env=env, capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["plugins_folder"] == str(PLUGINS)
    assert not any("mlwatch" in source for source in found["import_errors"]), found["import_errors"]
    assert [a for a in found["apps"] if a["url_prefix"] == "/mlwatch"] == [
        {"url_prefix": "/mlwatch", "name": "mlwatch reports"}]
    routes = {v["name"]: (v["href"], v["url_route"], v["destination"]) for v in found["views"]}
    assert routes["mlwatch reports"] == ("/mlwatch/", "mlwatch-reports", "nav")
    assert routes["Constraint ledger"] == ("/mlwatch/ledger", "mlwatch-ledger", "nav")
    # What the UI reads from GET /api/v2/plugins validates against Airflow's own serializer.
    [api] = found["api"]
    assert {v["name"] for v in api["external_views"]} == {"mlwatch reports", "Constraint ledger"}
    # Tasks, the scheduler and the DAG processor load plugins too: loading it must not pull mlwatch in.
    assert found["imported"] == []


@pytest.fixture
def airflow_plugins_from_repo(monkeypatch):
    """Airflow's plugins manager reading the repository's plugins folder, its caches emptied before and after."""
    from airflow import plugins_manager, settings

    def forget():
        for value in vars(plugins_manager).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()

    monkeypatch.setenv("AIRFLOW__CORE__PLUGINS_FOLDER", str(PLUGINS))
    monkeypatch.setattr(settings, "PLUGINS_FOLDER", str(PLUGINS))
    forget()
    yield
    forget()


@pytest.mark.slow
def test_inside_airflow_the_pages_are_behind_airflows_login(site, airflow_db, airflow_plugins_from_repo, monkeypatch):
    from airflow.api_fastapi.app import create_app as airflow_api, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    # The API server finds mlwatch's configuration as the DAGs do: $MLWATCH_CONFIG and the path overrides.
    monkeypatch.setenv("MLWATCH_CONFIG", site.source)
    monkeypatch.setenv("MLWATCH_REPORTS", str(site.reports))
    client = TestClient(airflow_api("core"))

    for path in ("/mlwatch/", "/mlwatch/reports/index.html", "/mlwatch/ledger", "/mlwatch/api/ledger"):
        assert client.get(path, follow_redirects=False).status_code == 401, path
    assert client.get("/mlwatch/ledger", headers={"Authorization": "Bearer not-a-token"}).status_code == 403

    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    bearer = {"Authorization": f"Bearer {token}"}
    page = client.get("/mlwatch/ledger", params={"day": INCIDENT_DAY.isoformat()}, headers=bearer)
    assert page.status_code == 200 and _constraint_rows(page.text) == ["feature_tier2"]

    client.cookies.set("_token", token)    # the UI's session cookie, which the iframe sends
    home = client.get("/mlwatch/", follow_redirects=False)
    assert home.status_code == 307 and home.headers["location"] == "/mlwatch/reports/index.html"
    assert client.get(f"/mlwatch/reports/daily/{INCIDENT_DAY}.html").status_code == 200
    assert client.get("/mlwatch/reports/daily/plotly.min.js").status_code == 200

    listed = client.get("/api/v2/plugins", headers=bearer)
    assert listed.status_code == 200
    [mlwatch] = [p for p in listed.json()["plugins"] if p["name"] == "mlwatch"]
    assert {v["url_route"] for v in mlwatch["external_views"]} == {"mlwatch-reports", "mlwatch-ledger"}
