"""The daily HTML report: one static page per day, an index, no server needed to read it.

    <reports>/index.html              the latest day's state, then every day's page, newest first
    <reports>/daily/<day>.html        the day's page
    <reports>/daily/<day>.json        the day's summary (the index and the Slack message use it)
    <reports>/daily/plotly.min.js     one copy of plotly.js shared by every page
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import jinja2

from mlwatch import formatting
from mlwatch.config import Config
from mlwatch.errors import UsageError
from mlwatch.report import charts
from mlwatch.report.data import ReportData, days_with_data, load

TEMPLATES = Path(__file__).parent / "templates"
PLOTLY_JS = "plotly.min.js"


@dataclass
class Written:
    path: Path
    summary: dict
    charts: int


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters.update(formatting.FILTERS)
    return env


def _records(frame) -> list[dict]:
    return [] if frame is None or frame.empty else frame.to_dict("records")


def summary(data: ReportData) -> dict:
    constraint = data.constraint
    return {
        "day": data.day.isoformat(),
        "models": len(data.models),
        "slos_judged": data.slos_judged,
        "slos_missed": [f"{model}: {slo}" for model, slo in data.slos_missed],
        "alerts_evaluated": data.alerts_evaluated,
        "open_alerts": len(data.alerts),
        "critical_alerts": sum(1 for a in data.alerts if a["severity"] == "critical"),
        "digest_items": len(data.digest),
        "constraint": constraint["stage"] if constraint else None,
        # For the landing page (index.html): what is open, most severe first.
        "alerts": [{"alert_id": a["alert_id"], "severity": a["severity"], "title": a["title"]} for a in data.alerts],
    }


def summary_line(s: dict) -> str:
    alerts = f"{s['open_alerts']} open alert(s)" if s.get("alerts_evaluated", True) else "alerts not evaluated"
    parts = [f"SLOs met {s['slos_judged'] - len(s['slos_missed'])}/{s['slos_judged']}", alerts]
    if s.get("constraint"):
        parts.append(f"constraint {s['constraint']}")
    return " · ".join(parts)


CHART_OPTIONS = dict(full_html=False, include_plotlyjs=False, config={"displaylogo": False, "responsive": True})


def embed(key: str, figure, div_id: str) -> dict:
    """A chart as the page shows it: its title in the page, the figure filling its cell.

    Inside the figure, a long title runs under Plotly's toolbar and is cut at the
    figure's edge; above it, in the page, it wraps.
    """
    title = figure.layout.title.text or ""
    figure.update_layout(title_text=None)    # each render draws its figures afresh: no copy needed
    return {"key": key, "title": title, "html": figure.to_html(div_id=div_id, **CHART_OPTIONS)}


def render(data: ReportData, previous: str | None = None) -> tuple[str, int]:
    """The page's HTML and the number of charts on it."""
    models, drawn = [], 0
    for model in data.models:
        figures = charts.model_charts(model)
        drawn += len(figures)
        rows = []
        for row in _records(model.slos):
            met = row["met"]
            status = "unknown" if formatting.missing(met) else ("met" if met else "missed")
            rows.append({**row, "status": status, "unpaged": model.unpaged.get(row["slo"])})
        models.append({"name": model.name, "task": model.task, "owner": model.owner, "slo_rows": rows,
                       "window_days": model.window_days, "feature_value": _records(model.feature_value),
                       "inputs": _records(model.inputs),
                       "charts": [embed(key, fig, f"{model.name}-{key}") for key, fig in figures]})
    pipeline = charts.pipeline_charts(data)
    drawn += len(pipeline)
    s = summary(data)
    html = _environment().get_template("daily.html.j2").render(
        day=data.day.isoformat(), previous=previous, models=models, alerts=data.alerts, digest=data.digest,
        alerts_evaluated=data.alerts_evaluated, latest_alert_night=data.latest_alert_night,
        judged=s["slos_judged"], missed=s["slos_missed"], constraint=data.constraint,
        ledger=_records(data.ledger), self_ledger=_records(data.self_ledger),
        unconfigured=_records(data.unconfigured), load=data.load,
        pipeline_charts=[embed(key, fig, f"pipeline-{key}") for key, fig in pipeline],
    )
    return html, drawn


def _ensure_plotly_js(folder: Path) -> None:
    import plotly
    from plotly.offline import get_plotlyjs

    target = folder / PLOTLY_JS
    stamp = folder / f".{PLOTLY_JS}.version"
    if target.exists() and stamp.exists() and stamp.read_text() == plotly.__version__:
        return
    target.write_text(get_plotlyjs(), encoding="utf-8")
    stamp.write_text(plotly.__version__)


def require_data(con: duckdb.DuckDBPyConnection, config: Config, day: dt.date) -> None:
    """Refuse a day the warehouse has no figures for, saying which days it has and what to run."""
    days = days_with_data(con)
    if day in days:
        return
    if not days:
        raise UsageError(f"no data for {day}: the warehouse {config.warehouse} has no day with data yet. "
                         f"Run `mlwatch run --date {day}` once that day's data has landed (or `mlwatch demo`).")
    span = f"{days[0]} .. {days[-1]}"
    if len(days) < (days[-1] - days[0]).days + 1:
        span += f" ({len(days)} days of them)"
    raise UsageError(f"no data for {day} in the warehouse {config.warehouse}: it has data for {span}. "
                     f"Report on one of those days (e.g. `mlwatch report --date {days[-1]}`), or run "
                     f"`mlwatch run --date {day}` once that day's data has landed.")


def write(con: duckdb.DuckDBPyConnection, config: Config, day: dt.date) -> Written:
    """Write the day's page and its summary, and refresh the index."""
    folder = Path(config.reports) / "daily"
    folder.mkdir(parents=True, exist_ok=True)
    _ensure_plotly_js(folder)
    data = load(con, config, day)
    earlier = sorted(p.stem for p in folder.glob("*.json") if p.stem < day.isoformat())
    html, drawn = render(data, previous=earlier[-1] if earlier else None)
    path = folder / f"{day.isoformat()}.html"
    _atomic_write(path, html)
    s = summary(data)
    _atomic_write(folder / f"{day.isoformat()}.json", json.dumps(s, indent=2, sort_keys=True))
    write_index(config)
    return Written(path=path, summary=s, charts=drawn)


def write_index(config: Config) -> Path:
    """The landing page: the latest day's state (SLOs, open alerts, the constraint) and every
    day's page, newest first, with its one-line summary."""
    folder = Path(config.reports) / "daily"
    days, latest = [], None
    for path in sorted(folder.glob("*.json"), reverse=True):
        try:
            s = json.loads(path.read_text())
            days.append((path.stem, summary_line(s)))
        except (ValueError, KeyError):
            continue    # a summary from an older mlwatch, or half-written by a killed run: skip it
        latest = latest or s
    index = Path(config.reports) / "index.html"
    _atomic_write(index, _environment().get_template("index.html.j2").render(days=days, latest=latest))
    return index


def _atomic_write(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
