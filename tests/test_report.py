"""The constraint ledger on the demo's stage saturation, mlwatch's own steps in it, and the
daily report opened in a real headless browser (Debian's Chromium)."""

import datetime as dt
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pytest

from mlwatch import backtest, report, self_measure
from mlwatch.demo import incidents as inc
from mlwatch.demo.generator import STAGES
from mlwatch.warehouse import connect_reader
from tests.conftest import REPO, SMALL_DEMO

ARTIFACTS = REPO / "test-artifacts"
SATURATED = inc.STAGE_SATURATION


def query(config, sql, params=()):
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        cursor = con.execute(sql, list(params))
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row)) for row in cursor.fetchall()]


def test_the_saturating_stage_is_the_constraint_on_the_injected_days_and_not_before(demo_warehouse):
    constraints = {r["day"]: r for r in query(
        demo_warehouse, "SELECT * FROM marts.constraint_ledger WHERE source = 'telemetry' AND is_constraint")}
    assert sorted(constraints) == [SMALL_DEMO.day(i) for i in range(SMALL_DEMO.days)]   # one per day
    for day, row in sorted(constraints.items()):
        if SATURATED.first_day() <= day <= SATURATED.last_day():
            assert (row["stage"], row["constraint_rule"]) == ("feature_tier2", "saturated"), day
            assert row["peak_utilization"] >= 0.9 and row["queue_growth"] > 0
            # Relieved, the constraint moves to the next slowest stage: tier 1, at 2 records/s.
            assert row["next_constraint"] == "feature_tier1", day
            assert row["relief_factor"] == pytest.approx(
                constraints[SATURATED.first_day() - dt.timedelta(days=1)]["capacity_rps"] / row["capacity_rps"],
                rel=0.02)
            assert row["what_if_system_capacity_rps"] == pytest.approx(
                min(row["capacity_rps"] * row["what_if_factor"], 2.0), rel=0.02)
        else:
            # Nothing saturates: the least headroom names tier 1 (2 workers x 1 s per record).
            assert (row["stage"], row["constraint_rule"]) == ("feature_tier1", "least_headroom"), day
            assert row["next_constraint"] == "feature_tier2"


def test_ledger_numbers_follow_the_contract_formulas(demo_warehouse):
    day = SATURATED.first_day() + dt.timedelta(days=1)
    raw = query(demo_warehouse, "SELECT * FROM raw.stages WHERE _partition_date = ? ORDER BY stage, window_start",
                [day])
    ledger = {r["stage"]: r for r in query(
        demo_warehouse, "SELECT * FROM marts.constraint_ledger WHERE day = ? AND source = 'telemetry'", [day])}
    assert sorted(ledger) == sorted(STAGES)
    for stage, (workers, _) in STAGES.items():
        rows = [r for r in raw if r["stage"] == stage]
        out = np.array([r["records_out"] for r in rows], dtype=float)
        offered = np.array([r["records_in"] for r in rows], dtype=float)
        busy = np.array([r["busy_seconds"] for r in rows], dtype=float)
        seconds = np.array([r["window_seconds"] for r in rows], dtype=float)
        queue = np.array([r["queue_depth"] for r in rows], dtype=float)
        hours = np.array([r["window_start"].hour for r in rows])
        row = ledger[stage]
        assert row["capacity_rps"] == pytest.approx(out.sum() / busy.sum() * workers, rel=1e-12)
        assert row["utilization"] == pytest.approx(busy.sum() / (seconds.sum() * workers), rel=1e-12)
        assert row["throughput_rps"] == pytest.approx(out.sum() / seconds.sum(), rel=1e-12)
        peak = max(busy[hours == h].sum() / (seconds[hours == h].sum() * workers) for h in set(hours))
        assert row["peak_utilization"] == pytest.approx(peak, rel=1e-12)
        assert row["peak_offered_rps"] == pytest.approx(
            max(offered[hours == h].sum() / seconds[hours == h].sum() for h in set(hours)), rel=1e-12)
        assert row["p95_latency_ms"] == pytest.approx(
            np.percentile([r["p95_latency_ms"] for r in rows], 95), rel=1e-12)
        assert (row["queue_depth"], row["queue_growth"]) == (queue.max(), queue.max() - queue[0])
        failures: dict[str, int] = {}
        for r in rows:
            if r["failure_mode"]:
                failures[r["failure_mode"]] = failures.get(r["failure_mode"], 0) + (r["failures"] or 0)
        assert row["top_failure_mode"] == (max(sorted(failures), key=failures.get) if failures else None)


def test_mlwatch_measures_its_own_night_in_the_same_ledger(demo_warehouse):
    rows = query(demo_warehouse, "SELECT * FROM marts.constraint_ledger WHERE source = 'mlwatch' AND day = ? "
                                 "ORDER BY stage_order", [SMALL_DEMO.end])
    # The fixture's backfill builds the marts only (no backtest step).
    assert [r["stage"] for r in rows] == [s for s in self_measure.STEPS if s != "backtest"]
    assert all(r["seconds"] > 0 for r in rows)
    # The backfill read every row once: rows read = accepted + quarantined.
    kept = " + ".join(f"(SELECT count(*) FROM {schema}.{feed})" for schema in ("raw", "quarantine")
                      for feed in ("predictions", "labels", "costs", "stages"))
    [ingest] = [r for r in rows if r["stage"] == "ingest"]
    assert ingest["records_in"] == query(demo_warehouse, f"SELECT {kept} AS n")[0]["n"] > 0
    [constraint] = [r for r in rows if r["is_constraint"]]
    assert constraint["seconds"] == max(r["seconds"] for r in rows)
    assert constraint["constraint_rule"] == "longest_step"
    assert sum(r["utilization"] for r in rows) == pytest.approx(1.0)
    second = sorted(rows, key=lambda r: -r["seconds"])[1]
    assert constraint["next_constraint"] == second["stage"]


def test_a_step_that_fails_is_in_the_ledger_with_its_error(tmp_path, monkeypatch):
    from mlwatch import nightly
    from mlwatch.alerts import rules
    from tests.helpers import toy_config

    config = toy_config(tmp_path)
    night = dt.date(2026, 3, 20)

    def broken(con, config, run_date):
        raise RuntimeError("rule crashed\nsecond line")

    monkeypatch.setattr(rules, "evaluate", broken)
    with pytest.raises(RuntimeError, match="rule crashed"):
        nightly.step_alerts(config, night)
    nightly.step_notify(config, night)
    runs = query(config, "SELECT step, status, error, seconds FROM ops.step_runs ORDER BY step")
    assert [(r["step"], r["status"], r["error"]) for r in runs] == [
        ("alerting", "failed", "RuntimeError: rule crashed"), ("notify", "ok", None)]
    assert all(r["seconds"] > 0 for r in runs)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Debian's chromium is missing: `make test` installs it (make browser)"
    return found


def open_in_browser(url: str, screenshot=None, width: int = 1400) -> tuple[str, list[str]]:
    """The DOM after the page's scripts ran, and every console message the page logged."""
    flags = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--enable-logging=stderr", "--v=0", "--virtual-time-budget=15000", f"--window-size={width},7000"]
    done = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    if screenshot:
        shot = subprocess.run([*flags, f"--screenshot={screenshot}", url], capture_output=True, text=True,
                              timeout=180)
        assert shot.returncode == 0 and screenshot.stat().st_size > 50_000, shot.stderr[-2000:]
    return done.stdout, console


# Run in the browser once the charts are drawn: every element that reaches past the right edge
# of the window, unless a scrolling container holds it (a wide table scrolls in its section),
# told to the page that frames it.
OVERFLOW_CHECK = """<script>
window.addEventListener('load', () => setTimeout(() => {
  const width = window.innerWidth;
  const clipped = el => { for (let p = el.parentElement; p; p = p.parentElement) {
    if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(p).overflowX)) return true; } return false; };
  const wide = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width > 0 && box.right > width + 1 && !clipped(el))
      wide.push(el.tagName + '.' + (el.getAttribute('class') || '') + ' to ' + Math.round(box.right));
  }
  parent.postMessage(JSON.stringify({width: width, page: document.documentElement.scrollWidth,
                                     wide: wide.slice(0, 10)}), '*');
}, 3000));
</script>"""

# Headless Chromium's window is at least 500 px wide: a phone's width is an iframe's.
FRAME = """<html><body style="margin: 0"><iframe src="{src}" style="width: {width}px; height: 6900px; border: 0"></iframe>
<script>window.addEventListener('message', e => document.body.setAttribute('data-overflow', e.data));</script>
</body></html>"""


def overflow_at(page: Path, width: int, screenshot=None) -> dict:
    """What reaches past a window `width` pixels wide, for the page with the check added."""
    checked = page.with_name(page.stem + "-checked.html")
    checked.write_text(page.read_text().replace("</body>", OVERFLOW_CHECK + "</body>"))
    frame = page.with_name(page.stem + f"-{width}px.html")
    frame.write_text(FRAME.format(src=checked.name, width=width))
    dom, _ = open_in_browser(frame.as_uri(), screenshot=screenshot, width=max(width, 500) + 40)
    found = re.search(r'data-overflow="([^"]*)"', dom)
    assert found, "the overflow check did not run"
    return json.loads(html.unescape(found.group(1)))


def test_the_overflow_check_sees_a_page_wider_than_the_window(tmp_path):
    page = tmp_path / "wide.html"
    page.write_text('<html><body><p>fits</p><div class="too-wide" style="width: 900px">wide</div>'
                    '<div style="overflow-x: auto"><div style="width: 900px">scrolls</div></div></body></html>')
    found = overflow_at(page, 390)
    assert found["width"] == 390 and found["page"] > 390
    assert found["wide"] == ["DIV.too-wide to 908"]


def test_the_daily_report_fits_a_phone_and_a_desktop(demo_warehouse):
    """Headless Chromium at 390 and 1400 px: nothing reaches past the window (wide tables
    scroll inside their section), the scorecard stacks on the phone, the toolbar is hidden."""
    day = SMALL_DEMO.end
    with connect_reader(demo_warehouse.warehouse) as con:
        written = report.write(con, demo_warehouse, day)
    ARTIFACTS.mkdir(exist_ok=True)
    for width in (390, 1400):
        # The desktop screenshot is test_the_daily_report_renders_in_headless_chromium's.
        shot = ARTIFACTS / f"report-{day}-{width}px.png" if width < 1000 else None
        found = overflow_at(written.path, width, screenshot=shot)
        assert found["width"] == width
        assert found["wide"] == [] and found["page"] <= width, found
    page = written.path.read_text()
    assert re.search(r"@media \(max-width: 640px\)[^@]*table\.stacked td::before \{ content: attr\(data-label\)", page)
    assert re.search(r"@media \(max-width: 640px\)[^@]*\.modebar-container \{ display: none; \}", page)
    assert '<table class="stacked">' in page and 'data-label="status"' in page


def test_the_browser_check_sees_a_broken_page(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text('<div class="js-plotly-plot"></div><script>missingFunction();</script>')
    dom, console = open_in_browser(page.as_uri())
    assert 'class="js-plotly-plot"' in dom
    assert any("missingFunction is not defined" in line for line in console)


def test_the_daily_report_renders_in_headless_chromium(demo_warehouse):
    day = SMALL_DEMO.end                 # the backfill's night: its alerts are open, tier 2 saturates
    assert SATURATED.first_day() <= day <= SATURATED.last_day()
    with connect_reader(demo_warehouse.warehouse) as con:
        written = report.write(con, demo_warehouse, day)
    assert written.path == demo_warehouse.reports / "daily" / f"{day}.html"
    assert written.charts >= 15       # 6 per model, 3 for the pipeline
    ARTIFACTS.mkdir(exist_ok=True)
    dom, console = open_in_browser(written.path.as_uri(), screenshot=ARTIFACTS / f"report-{day}.png")
    assert console == []
    # Plotly drew every chart: each div became a plot with its SVG.
    assert len(re.findall(r'class="plotly-graph-div js-plotly-plot"', dom)) == written.charts
    assert dom.count('class="main-svg"') >= 2 * written.charts
    # The ledger table highlights the constraint, and the page names it.
    assert re.search(r'<tr class="constraint"><td>feature_tier2</td>', dom)
    assert "The constraint on" in dom and "<b>feature_tier2</b>" in dom
    # The open alerts carry their playbooks.
    assert "Time to decision over its SLO" in dom and "Playbook:" in dom
    assert written.summary["constraint"] == "feature_tier2"
    index = (demo_warehouse.reports / "index.html").read_text()
    assert f'href="daily/{day}.html"' in index


# --- The page itself, rendered from small hand-made marts (no warehouse, no browser) ---

REPORT_DAY = dt.date(2026, 9, 29)


def sample_data(day=REPORT_DAY, **changes):
    """A ReportData shaped like the marts' answers for two models and the pipeline."""
    import pandas as pd

    from mlwatch.report.data import ModelSection, ReportData

    days = [day - dt.timedelta(days=i) for i in range(6, -1, -1)]

    def model(name, flat_coverage):
        return ModelSection(
            name=name, task="binary_classification", owner="@owner", metric="roc_auc", window_days=7,
            slos=pd.DataFrame({"slo": ["max_data_loss", "time_to_decision_p95_s"],
                               "detail": ["share of input rows quarantined", "seconds"],
                               "target": [0.001, 300.0], "actual": [0.0, 2314.57], "met": [True, False]}),
            performance=pd.DataFrame({"window_end": days, "model_version": "__all__", "value": 0.8,
                                      "ci_low": 0.78, "ci_high": 0.82, "reference_value": 0.81, "n_labeled": 900}),
            segments=pd.DataFrame({"model_version": "__all__", "segment": "country", "segment_value": ["BR", "US"],
                                   "value": [0.72, 0.81], "ci_low": [0.70, 0.79], "ci_high": [0.75, 0.83],
                                   "reference_value": [0.80, 0.81], "n_labeled": [500, 900]}),
            drift=pd.DataFrame({"feature": "amount_usd", "window_end": days, "strength": 0.4, "drifted": False,
                                "with_impact": False}),
            coverage=pd.DataFrame({"day": days, "feature": "amount_usd", "is_critical": True,
                                   "coverage": 1.0 if flat_coverage else [1, 1, 0.65, 0.66, 1, 1, 1]}),
            cost=pd.DataFrame({"day": days, "cost_per_prediction_usd": 0.0012, "cost_usd": 36.0,
                               "n_predictions": 30000}),
            time_to_decision=pd.DataFrame({"day": days, "p50_s": 40.0, "p95_s": 90.0, "p99_s": 120.0}),
            feature_value=pd.DataFrame(), budget_usd=0.002, ttd_slo_s=300.0)

    stages = ["ingest", "feature_tier2"]
    data = ReportData(
        day=day, since=days[0], models=[model("card_fraud", False), model("delivery_eta", True)],
        ledger=pd.DataFrame({
            "stage": stages, "stage_order": [1, 2], "capacity_rps": [40.09, 0.9251],
            "throughput_rps": [0.5222, 0.5198], "utilization": [0.013, 0.562], "peak_utilization": [0.029, 1.006],
            "headroom": [35.16, 0.8113], "p95_latency_ms": [83.6, 2206377.31], "queue_depth": [0.0, 2180.0],
            "queue_growth": [0.0, 2180.0], "top_failure_mode": ["schema_mismatch", "lookup_timeout"],
            "is_constraint": [False, True], "constraint_rule": [None, "saturated"],
            "system_capacity_rps": 0.9251, "what_if_factor": 2.0, "what_if_system_capacity_rps": 1.8502,
            "next_constraint": "feature_tier1", "relief_factor": 2.1599}),
        ledger_history=pd.DataFrame({"day": days * 2, "stage": ["ingest"] * 7 + ["feature_tier2"] * 7,
                                     "stage_order": [1] * 7 + [2] * 7, "peak_utilization": 0.5,
                                     "is_constraint": [False] * 7 + [True] * 7}),
        self_ledger=pd.DataFrame({
            "stage": ["ingest", "dbt_build", "alerting", "notify", "reporting"], "stage_order": [1, 2, 3, 4, 5],
            "records_in": [89639.0, 2699998.0, 3.0, 0.0, 15.0], "seconds": [1.71, 2206.4, 0.15, 0.0126, 1.2],
            "capacity_rps": [52352.04, 1223.7, 19.73, 0.0, 12.5], "utilization": [0.001, 0.99, 0.0, 0.0, 0.001],
            "top_failure_mode": None, "is_constraint": [False, True, False, False, False]}))
    for name, value in changes.items():
        setattr(data, name, value)
    return data


def page_of(data) -> str:
    html, _ = report.render(data)
    return html


def test_every_chart_fits_its_grid_cell_at_any_width():
    data = sample_data()
    html = page_of(data)
    # Columns keep their width as charts are added (auto-fill), may shrink below 560px on a narrow
    # screen, and a drawn chart cannot widen its column (a grid item's min-width: auto would let it).
    assert "grid-template-columns: repeat(auto-fill, minmax(min(560px, 100%), 1fr))" in html
    assert re.search(r"\.chart\s*\{[^}]*min-width:\s*0", html)
    # No figure asks for a width of its own: each takes its cell's, and follows it when the cell changes.
    figures = [f for m in data.models for _, f in report.charts.model_charts(m)] + [
        f for _, f in report.charts.pipeline_charts(data)]
    assert len(figures) == 15
    assert all(f.layout.width is None and f.layout.autosize is not False for f in figures)
    assert not re.search(r'class="plotly-graph-div" style="[^"]*width:\s*\d+px', html)
    assert len(re.findall(r'class="plotly-graph-div" style="height:100%; width:100%;"', html)) == 15
    assert '"responsive": true' in html and "new ResizeObserver" in html and "Plotly.Plots.resize" in html


def test_wide_tables_scroll_inside_their_section_on_a_narrow_screen():
    html = page_of(sample_data())
    assert re.search(r"section > table\s*\{[^}]*display:\s*block;[^}]*overflow-x:\s*auto", html)
    assert re.search(r"<section[^>]*>\s*<h2>[^<]*</h2>\s*<table[ >]", html)   # the tables it applies to


def test_chart_titles_sit_above_the_chart_where_the_toolbar_cannot_cover_them():
    data = sample_data()
    html = page_of(data)
    titles = re.findall(r'<div class="chart" data-chart="[^"]+"><h4 class="chart-title">([^<]+)</h4>', html)
    assert len(titles) == 15
    assert "roc_auc over 7-day windows, with 95% intervals" in titles
    assert "Drift: strongest effect size / threshold, 7-day windows (○ drifted, ● drifted with impact)" in titles
    # Inside the figures, no title is left for Plotly's toolbar to overlap.
    assert not re.findall(r'"title":\{"text":"(?:roc_auc over|Drift:|Pipeline stages|Feature coverage \()', html)


def table_rows(html: str, section: str) -> list[list[str]]:
    """The cells of the tables in one <section> (charts left out), as the reader sees them."""
    body = re.search(rf'<section id="{section}">(.*?)</section>', html, re.S).group(1)
    tables = re.findall(r"<table[^>]*>(.*?)</table>", body, re.S)
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]
            for table in tables for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)]


def test_counts_show_as_whole_numbers_and_durations_with_their_unit():
    html = page_of(sample_data())
    ledger = table_rows(html, "ledger")
    own_night = {row[0]: row for row in ledger if row[0] in ("ingest", "dbt_build", "alerting", "notify", "reporting")
                 and len(row) == 6}
    assert {step: row[1] for step, row in own_night.items()} == {
        "ingest": "89,639", "dbt_build": "2,699,998", "alerting": "3", "notify": "0", "reporting": "15"}
    assert {step: row[2] for step, row in own_night.items()} == {
        "ingest": "1.7 s", "dbt_build": "36.8 min", "alerting": "150 ms", "notify": "13 ms", "reporting": "1.2 s"}
    assert own_night["notify"][3] == "0"                                    # rows/s of a step with no rows
    stages = {row[0]: row for row in ledger if len(row) == 10}
    assert stages["stage"][6] == "p95 latency"
    assert (stages["feature_tier2"][6], stages["ingest"][6]) == ("36.8 min", "84 ms")
    assert (stages["feature_tier2"][7], stages["feature_tier2"][8]) == ("2,180", "2,180")
    assert "queue grew by 2,180 records" in html and "with 2× its capacity" in html
    scorecard = {row[1]: row for row in table_rows(html, "scorecard")[1:3]}
    assert scorecard["time_to_decision_p95_s"][3:5] == ["5 min", "38.6 min"]
    assert scorecard["max_data_loss"][3:5] == ["0.001000", "0"]
    assert not re.search(r">\s*\d[\d,]*\.0+\s*<", html)                      # no 3.0000, 15.00 anywhere


def test_share_axes_run_from_0_to_100_percent_even_when_the_share_is_flat():
    data = sample_data()
    flat = next(m for m in data.models if m.name == "delivery_eta")             # coverage 100% every day
    dipping = next(m for m in data.models if m.name == "card_fraud")
    for figure in (report.charts.coverage(flat), report.charts.coverage(dipping)):
        assert figure.layout.yaxis.tickformat == ".0%"
        assert figure.layout.yaxis.range == (0, pytest.approx(1.04))
    # Busiest-hour utilization above 100% (telemetry rounding) stays on the chart.
    utilization = report.charts.ledger_utilization(data).layout.yaxis
    assert utilization.range == (0, pytest.approx(1.006 * 1.04)) and utilization.tickformat == ".0%"


def test_a_day_whose_alerts_were_not_evaluated_says_so_instead_of_no_open_alert():
    from mlwatch.alerts import messages

    past = REPORT_DAY - dt.timedelta(days=4)
    data = sample_data(day=past, alerts_evaluated=False, latest_alert_night=REPORT_DAY)
    html = page_of(data)
    assert "No open alert" not in html
    assert f"Alerts were not evaluated for {past}." in html and f"the latest: {REPORT_DAY}" in html
    assert "open alerts: not evaluated" in html
    s = report.summary(data)
    assert s["alerts_evaluated"] is False and "alerts not evaluated" in report.summary_line(s)
    said = messages.report_summary("#ml-alerts", past, s, "report.html")
    assert dict(said.facts)["Open alerts"] == "not evaluated (see the report)"
    assert said.status is None and said.severity == "warning"
    # A night the rules did run, with nothing open, still says so.
    calm = page_of(sample_data(alerts_evaluated=True, latest_alert_night=REPORT_DAY))
    assert "No open alert." in calm and "not evaluated" not in calm


def test_the_report_knows_which_nights_had_their_alerts_evaluated(demo_warehouse, tmp_path):
    from mlwatch.report.data import load

    copy = tmp_path / "mlwatch.duckdb"
    shutil.copy(demo_warehouse.warehouse, copy)
    config = demo_warehouse.model_copy(update={"warehouse": copy})
    past = SATURATED.first_day() + dt.timedelta(days=1)
    with duckdb.connect(str(copy)) as con:
        # The fixture's backfill judged its last night only.
        assert load(con, config, SMALL_DEMO.end).alerts_evaluated
        unevaluated = load(con, config, past)
        assert not unevaluated.alerts_evaluated and unevaluated.latest_alert_night == SMALL_DEMO.end
        assert unevaluated.alerts == [] and unevaluated.digest == []
        con.execute("DELETE FROM ops.alert_nights")
        con.execute("DELETE FROM marts.alerts")
    # A backfill's backtest judges every night it replays: a past day's report shows what
    # was open that night, and the alert load of its history.
    backtest.replay(config, SATURATED.first_day(), past + dt.timedelta(days=1))
    with duckdb.connect(str(copy)) as con:
        that_night = load(con, config, past)
    assert that_night.alerts_evaluated and that_night.latest_alert_night == past
    [breach] = [a for a in that_night.alerts if a["kind"] == "time_to_decision_breach"]
    assert breach["first_seen"] == SATURATED.first_day() and breach["status"] == "open"
    assert that_night.load.pages[(SATURATED.first_day(), config.slack.default_channel)] >= 1
    page = page_of(unevaluated)
    assert "Alerts were not evaluated for" in page and "Alert load" in page


def test_an_alert_of_the_pipeline_names_the_pipeline_not_its_internal_owner():
    alert = {"alert_id": "mlw-1", "severity": "critical", "title": "Time to decision over its SLO",
             "kind": "time_to_decision_breach", "model_name": "__pipeline__", "model_version": None,
             "since": REPORT_DAY, "first_seen": REPORT_DAY, "owner": None, "facts": [], "status": "open",
             "playbook_title": "Constraint review", "playbook_steps": [], "command": None, "look": None}
    page = page_of(sample_data(alerts=[alert], alerts_evaluated=True, latest_alert_night=REPORT_DAY))
    assert "time_to_decision_breach · model the pipeline (several models)" in page
    assert "__pipeline__" not in page


def test_the_landing_page_shows_the_latest_days_state_then_every_day(tmp_path):
    """reports/index.html: the newest day's SLOs, open alerts and constraint first; older
    summaries (an older mlwatch's, without alert titles) still listed."""
    from types import SimpleNamespace

    folder = tmp_path / "daily"
    folder.mkdir()
    older = {"day": "2026-09-28", "models": 2, "slos_judged": 12, "slos_missed": [], "alerts_evaluated": True,
             "open_alerts": 0, "critical_alerts": 0, "digest_items": 0, "constraint": None}
    newest = dict(older, day="2026-09-29", slos_missed=["card_fraud: time_to_decision_p95_s"], open_alerts=1,
                  critical_alerts=1, digest_items=2, constraint="feature_tier2",
                  alerts=[{"alert_id": "mlw-1", "severity": "critical", "title": "Time to decision over its SLO"}])
    (folder / "2026-09-28.json").write_text(json.dumps(older))
    (folder / "2026-09-29.json").write_text(json.dumps(newest))
    page = report.write_index(SimpleNamespace(reports=tmp_path)).read_text()
    latest = page[page.index('id="latest"'):page.index('id="days"')]
    assert 'Latest: <a href="daily/2026-09-29.html">2026-09-29</a>' in latest
    assert "SLOs met: 11 of 12; missed: card_fraud: time_to_decision_p95_s" in latest
    assert '<span class="badge critical">critical</span> Time to decision over its SLO <code>mlw-1</code>' in latest
    assert "2 item(s) in the digest" in latest and "Pipeline constraint: <b>feature_tier2</b>" in latest
    days = page[page.index('id="days"'):]
    assert days.index('href="daily/2026-09-29.html"') < days.index('href="daily/2026-09-28.html"')


def test_a_missed_slo_without_an_alert_says_why_beside_it():
    data = sample_data(alerts_evaluated=True, latest_alert_night=REPORT_DAY)
    data.models[0].unpaged = {"time_to_decision_p95_s": "not paged: because"}
    page = page_of(data)
    assert '<td class="missed" data-label="status">missed<div class="why">not paged: because</div></td>' in page
    assert page.count('class="why"') == 1
