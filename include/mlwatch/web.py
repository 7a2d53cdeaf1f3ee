"""mlwatch's web pages: the daily reports and the constraint ledger, for the Airflow UI.

`create_app()` returns a small FastAPI application; the Airflow plugin
(plugins/mlwatch_plugin.py) mounts it under /mlwatch, and it runs without Airflow too:

    GET /                      the reports' index (redirect), or a page that says how to make the first report
    GET /reports/<path>        the reports folder as static files (index.html, daily/<day>.html, plotly.min.js)
    GET /ledger?day=&source=   marts.constraint_ledger for one day as a page: the constraint row
                               highlighted, the what-if, links to the previous and next day
    GET /api/ledger?day=&source=   the same rows as JSON

Making the app does no I/O and imports nothing heavy. Every request loads the
configuration (--config is not available here: $MLWATCH_CONFIG, else ./mlwatch.yml,
else the embedded demo configuration, as mlwatch.config resolves it) and opens the
warehouse read-only just for its query: the nightly job must be able to take the writer
lock a moment later. While the job holds the file the ledger answers 503 and says so.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import os
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

SOURCES = ("telemetry", "mlwatch")
# What the reports folder serves; anything else in it (outbox.jsonl, partial writes) stays private.
SERVED_SUFFIXES = {".html", ".json", ".js", ".css", ".png", ".svg", ".ico", ".txt"}
BUSY_MESSAGE = "the nightly job is writing; try again in a minute"
RETRY_AFTER_SECONDS = 60
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")

ConfigLoader = Callable[[], Any]


class Problem(Exception):
    """A request that cannot be answered, with the status and what to do about it."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _default_config_loader():
    from mlwatch.config import load_config

    return load_config()


def create_app(config_loader: ConfigLoader | None = None, *, dependencies: Sequence[Callable] = ()) -> FastAPI:
    """The web application. `config_loader()` returns the mlwatch Config and is called per request.

    `dependencies` run before every route (the Airflow plugin passes its login check).
    """
    load = config_loader or _default_config_loader
    app = FastAPI(title="mlwatch", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(d) for d in dependencies])
    static_by_folder: dict[Path, Any] = {}

    async def config() -> Any:
        try:
            return await run_in_threadpool(load)
        except Exception as exc:  # ConfigError or worse: the page says what is wrong, not a stack trace
            raise Problem(500, f"mlwatch cannot load its configuration: {exc}") from exc

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        if request.url.path.rstrip("/").endswith("/api/ledger"):
            return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=exc.headers)
        return HTMLResponse(_page("mlwatch", _render("problem", status=exc.status, message=exc.message,
                                                     base=_app_path(request, ""))),
                            status_code=exc.status, headers=exc.headers)

    @app.get("/", include_in_schema=False)
    async def home(request: Request) -> Response:
        cfg = await config()
        if (Path(cfg.reports) / "index.html").is_file():
            return RedirectResponse(_app_path(request, "reports/index.html"), status_code=307)
        return HTMLResponse(_page("mlwatch reports", _render("no_report", reports=str(cfg.reports),
                                                             today=dt.date.today().isoformat(),
                                                             base=_app_path(request, ""))))

    @app.get("/reports", include_in_schema=False)
    async def reports_root(request: Request) -> Response:
        return RedirectResponse(_app_path(request, "reports/"), status_code=307)

    @app.api_route("/reports/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def reports(path: str, request: Request) -> Response:
        cfg = await config()
        folder = Path(cfg.reports)
        relative = _safe_relative(path)
        if not folder.is_dir():
            raise Problem(404, f"there is no report yet: {folder} does not exist. Run `mlwatch report --date D` "
                               "or let the nightly DAG (mlwatch_nightly) run.")
        static = static_by_folder.get(folder)
        if static is None:    # StaticFiles refuses paths that resolve outside the folder, symlinks included
            static = static_by_folder.setdefault(folder, StaticFiles(directory=folder, html=True, check_dir=False))
        return await static.get_response(relative, request.scope)

    @app.get("/ledger", response_class=HTMLResponse)
    async def ledger_page(request: Request, day: str | None = None, source: str = "telemetry") -> Response:
        cfg = await config()
        ledger = await run_in_threadpool(read_ledger, cfg, day, source)
        report = Path(cfg.reports) / "daily" / f"{ledger['day']}.html"
        body = _render("ledger", **ledger, report=report.is_file(), sources=SOURCES, base=_app_path(request, ""),
                       constraint=next((r for r in ledger["rows"] if r.get("is_constraint")), None))
        return HTMLResponse(_page(f"Constraint ledger · {ledger['day']}", body))

    @app.get("/api/ledger")
    async def ledger_json(day: str | None = None, source: str = "telemetry") -> Response:
        cfg = await config()
        ledger = await run_in_threadpool(read_ledger, cfg, day, source)
        return JSONResponse(_jsonable(ledger))

    return app


async def require_airflow_login(request: Request) -> None:
    """A dependency for create_app(): only callers with a valid Airflow token get in (401/403 otherwise).

    The token is the Airflow UI's `_token` cookie, or `Authorization: Bearer <jwt>` from Airflow's
    POST /auth/token, checked by Airflow's own code. Only works inside Airflow's API server.
    """
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    await get_user(request=request, _oauth_token=None, bearer_credentials=await bearer_scheme(request))


def _app_path(request: Request, relative: str) -> str:
    """An absolute path inside this app, wherever it is mounted (the Airflow plugin: /mlwatch)."""
    return request.scope.get("root_path", "").rstrip("/") + "/" + relative


def _safe_relative(path: str) -> str:
    """The requested file relative to the reports folder; '..', absolute paths and dot-files are refused."""
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if any(part in ("..", "/") or part.startswith(".") or "\x00" in part for part in parts):
        raise Problem(404, "no such report file")
    if parts and "." in parts[-1] and PurePosixPath(parts[-1]).suffix.lower() not in SERVED_SUFFIXES:
        raise Problem(404, "no such report file")    # e.g. outbox.jsonl: Slack's outbox is not a page
    return os.path.join(*parts) if parts else "."


def parse_day(day: str | None) -> dt.date | None:
    """The `day` query parameter: None for the latest day, else a YYYY-MM-DD date (400 otherwise)."""
    if day is None or day.strip() == "":
        return None
    if _DAY.fullmatch(day.strip()):
        try:
            return dt.date.fromisoformat(day.strip())
        except ValueError:
            pass
    raise Problem(400, f"day must be a date written YYYY-MM-DD, got {day!r}")


def read_ledger(config: Any, day: str | None, source: str) -> dict:
    """The ledger rows of one day and source, with the neighbouring days that have rows.

    Opens the warehouse read-only for the query alone and closes it before returning.
    """
    from mlwatch.errors import WarehouseBusyError
    from mlwatch.warehouse import connect_reader, table_exists

    wanted = parse_day(day)
    if source not in SOURCES:
        raise Problem(400, f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    path = Path(config.warehouse)
    if not path.exists():
        raise Problem(404, f"the warehouse {path} does not exist yet; run `mlwatch run --date D` (or `mlwatch demo`), "
                           "or let the nightly DAG (mlwatch_nightly) run")
    try:
        with connect_reader(path) as con:
            if not table_exists(con, "marts", "constraint_ledger"):
                raise Problem(404, f"the warehouse {path} has no marts.constraint_ledger yet; run `mlwatch run "
                                   "--date D` or let the nightly DAG (mlwatch_nightly) build the marts")
            first, last = con.execute("SELECT min(day), max(day) FROM marts.constraint_ledger WHERE source = ?",
                                      [source]).fetchone()
            if last is None:
                raise Problem(404, f"marts.constraint_ledger has no {source} rows yet"
                                   + (" (stage telemetry feeds them: see the stages/ feed)" if source == "telemetry"
                                      else " (the nightly job writes them after its first run)"))
            chosen = wanted or last
            cursor = con.execute("SELECT * FROM marts.constraint_ledger WHERE day = ? AND source = ? "
                                 "ORDER BY stage_order NULLS LAST, stage", [chosen, source])
            columns = [d[0] for d in cursor.description]
            rows = [dict(zip(columns, values)) for values in cursor.fetchall()]
            previous, following = con.execute(
                "SELECT max(day) FILTER (WHERE day < ?), min(day) FILTER (WHERE day > ?) "
                "FROM marts.constraint_ledger WHERE source = ?", [chosen, chosen, source]).fetchone()
    except WarehouseBusyError:
        raise Problem(503, BUSY_MESSAGE, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
    if not rows:
        raise Problem(404, f"marts.constraint_ledger has no {source} rows for {chosen}; "
                           f"it has days {first} to {last}")
    return {"day": chosen, "source": source, "first_day": first, "last_day": last,
            "previous_day": previous, "next_day": following, "columns": columns, "rows": rows}


def _json_value(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value


def _jsonable(ledger: dict) -> dict:
    out = {key: _json_value(value) for key, value in ledger.items() if key not in ("rows", "columns")}
    out["rows"] = [{key: _json_value(value) for key, value in row.items()} for row in ledger["rows"]]
    return out


# --- pages -------------------------------------------------------------------------------

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, sans-serif; margin: 16px 24px; color: #222; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { border-bottom: 1px solid #eee; padding: 4px 10px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.constraint { background: #fde8e8; font-weight: 600; }
nav a, nav span { margin-right: 14px; } .muted { color: #888; } .problem { color: #c62828; }
pre { background: #f4f4f4; padding: 6px 10px; }
"""

_TEMPLATES = {
    "page": """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title><style>{{ style | safe }}</style></head>
<body>{{ body | safe }}</body></html>""",

    "problem": """<h1>mlwatch</h1>
<p class="problem" data-status="{{ status }}">{{ message }}</p>
<p><a href="{{ base }}ledger">constraint ledger</a> · <a href="{{ base }}">reports</a></p>""",

    "no_report": """<h1>mlwatch reports</h1>
<p>There is no report yet in <code>{{ reports }}</code>.</p>
<p>The nightly DAG <code>mlwatch_nightly</code> writes one every night; to make one now, run</p>
<pre>mlwatch report --date {{ today }}</pre>
<p>(or <code>mlwatch demo</code> for the sample data set). The <a href="{{ base }}ledger">constraint ledger</a>
reads the warehouse directly.</p>""",

    "ledger": """<h1>Constraint ledger · {{ day }}</h1>
<nav>
  {% if previous_day %}<a rel="prev" href="{{ base }}ledger?day={{ previous_day }}&amp;source={{ source }}">&larr; {{ previous_day }}</a>{% endif %}
  {% if next_day %}<a rel="next" href="{{ base }}ledger?day={{ next_day }}&amp;source={{ source }}">{{ next_day }} &rarr;</a>{% endif %}
  {% if day != last_day %}<a href="{{ base }}ledger?source={{ source }}">latest ({{ last_day }})</a>{% endif %}
  {% for s in sources %}{% if s == source %}<span>{{ s }}</span>{% else %}<a href="{{ base }}ledger?day={{ day }}&amp;source={{ s }}">{{ s }}</a>{% endif %}{% endfor %}
  {% if report %}<a href="{{ base }}reports/daily/{{ day }}.html">the day's report</a>{% endif %}
  <a href="{{ base }}api/ledger?day={{ day }}&amp;source={{ source }}">JSON</a>
  <form method="get" action="{{ base }}ledger" style="display:inline">
    <input type="date" name="day" value="{{ day }}" min="{{ first_day }}" max="{{ last_day }}">
    <input type="hidden" name="source" value="{{ source }}"><button type="submit">show</button>
  </form>
</nav>
{% if source == "telemetry" %}
{% if constraint %}
<p class="what-if">The constraint on {{ day }} is <b>{{ constraint.stage }}</b>{% if constraint.constraint_rule %} ({{ constraint.constraint_rule | replace("_", " ") }}){% endif %}:
  busiest-hour utilization {{ constraint.peak_utilization | pct }}, queue grew by {{ constraint.queue_growth | count }} records,
  capacity {{ constraint.capacity_rps | number }} records/s. System capacity {{ constraint.system_capacity_rps | number }} records/s;
  with {{ constraint.what_if_factor | number }}&times; its capacity it would be {{ constraint.what_if_system_capacity_rps | number }} records/s{% if constraint.next_constraint %},
  and the constraint moves to <b>{{ constraint.next_constraint }}</b> once {{ constraint.stage }} has
  {{ constraint.relief_factor | number }}&times; its capacity{% endif %}.</p>
{% else %}<p class="muted">No stage is marked as the constraint on {{ day }}.</p>{% endif %}
<table>
  <tr><th>stage</th><th>capacity rps</th><th>throughput rps</th><th>offered rps</th><th>utilization</th>
    <th>busiest hour</th><th>headroom</th><th>p95 latency</th><th>queue depth</th><th>queue growth</th>
    <th>dropped</th><th>top failure mode</th><th>failures</th></tr>
  {% for r in rows %}
  <tr class="{{ 'constraint' if r.is_constraint else '' }}" data-stage="{{ r.stage }}"><td>{{ r.stage }}</td>
    <td class="num">{{ r.capacity_rps | number }}</td><td class="num">{{ r.throughput_rps | number }}</td>
    <td class="num">{{ r.offered_rps | number }}</td><td class="num">{{ r.utilization | pct }}</td>
    <td class="num">{{ r.peak_utilization | pct }}</td><td class="num">{{ r.headroom | number }}</td>
    <td class="num">{{ r.p95_latency_ms | duration_ms }}</td><td class="num">{{ r.queue_depth | count }}</td>
    <td class="num">{{ r.queue_growth | count }}</td><td class="num">{{ r.records_dropped | count }}</td>
    <td>{{ r.top_failure_mode or "" }}</td><td class="num">{{ r.failures | count }}</td></tr>
  {% endfor %}
</table>
{% else %}
<p>mlwatch's own nightly steps on {{ day }}{% if constraint %}; the longest is <b>{{ constraint.stage }}</b>{% endif %}.</p>
<table>
  <tr><th>step</th><th>rows</th><th>seconds</th><th>rows/s</th><th>share of the night</th><th>error</th></tr>
  {% for r in rows %}
  <tr class="{{ 'constraint' if r.is_constraint else '' }}" data-stage="{{ r.stage }}"><td>{{ r.stage }}</td>
    <td class="num">{{ r.records_in | count }}</td><td class="num">{{ r.seconds | duration }}</td>
    <td class="num">{{ r.capacity_rps | number }}</td><td class="num">{{ r.utilization | pct }}</td>
    <td>{{ r.top_failure_mode or "" }}</td></tr>
  {% endfor %}
</table>
{% endif %}
<p class="muted">From marts.constraint_ledger (days {{ first_day }} to {{ last_day }}); query it with
  <code>mlwatch sql</code>.</p>""",
}


@functools.cache
def _environment():
    import jinja2

    from mlwatch import formatting

    env = jinja2.Environment(loader=jinja2.DictLoader(_TEMPLATES), autoescape=True, undefined=jinja2.ChainableUndefined)
    env.filters.update(formatting.FILTERS)
    return env


def _render(name: str, **context: Any) -> str:
    return _environment().get_template(name).render(**context)


def _page(title: str, body: str) -> str:
    return _render("page", title=title, style=_STYLE, body=body)
