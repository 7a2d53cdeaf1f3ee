"""The `mlwatch` command line (contract §4). Every command calls the library the DAGs call."""

from __future__ import annotations

import datetime as dt
import logging
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console
from rich.table import Table

from mlwatch import adhoc
from mlwatch.config import Config, load_config
from mlwatch.errors import MlwatchError, UsageError

if TYPE_CHECKING:
    from mlwatch import nightly

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Nightly observability and governance for machine-learning models in production.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
# Piped output is read by people and by grep: wide, and long values are folded, never cut.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)

ConfigOption = typer.Option(None, "--config", "-c", help="Configuration file (default: $MLWATCH_CONFIG, else ./mlwatch.yml).")


def _table(columns: list[str], title: str | None = None) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _cell(value) -> str:
    """A value as a table shows it: doubles to 6 significant digits, so that a column of
    metrics can be read at a glance (csv and json keep every digit)."""
    if value is None:
        return "NULL"
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        if abs(value) < 1:
            return f"{value:.6g}"
        return f"{value:.{max(0, 6 - len(str(int(abs(value)))))}f}"
    return str(value)


def _date(value: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{name} must be a date as YYYY-MM-DD, got {value!r}") from None


def _config(path: Optional[Path]) -> Config:
    return load_config(path)


class _Progress:
    """Prints what long work is doing, with the elapsed time."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        style = "red" if "FAILED" in text or "not delivered" in text else None
        err.print(f"[dim]{elapsed:7.1f}s[/dim] {text}", style=style, highlight=False)


def _summary(report: nightly.RunReport) -> None:
    from mlwatch.ingest import summarize

    table = Table(title=f"mlwatch {report.start}" + (f" .. {report.end}" if report.end != report.start else ""))
    for column in ("feed", "partitions", "failed", "rows read", "accepted", "quarantined"):
        table.add_column(column, justify="left" if column == "feed" else "right")
    for feed, s in summarize(report.partitions).items():
        table.add_row(feed, f"{s['partitions']:,}", f"{s['failed']:,}", f"{s['rows_read']:,}",
                      f"{s['rows_accepted']:,}", f"{s['rows_quarantined']:,}")
    out.print(table)
    if report.model_seconds:
        out.print(f"dbt: {len(report.model_seconds)} models built in {sum(report.model_seconds.values()):.1f}s")
    if report.load:
        out.print(f"backtest: the alert rules replayed on {report.replayed} night(s) before {report.end}, each with "
                  "what it knew (nights judged before are not replayed); their alerts are in marts.alerts "
                  f"(origin 'backtest'), told only if still open on {report.end}")
        for line in report.load.lines():
            out.print(line, highlight=False)
    if report.alerts:
        a = report.alerts
        out.print(f"alerts: {len(a.opened)} opened, {len(a.updated)} still open, {len(a.resolved)} resolved"
                  + (f", {len(a.unjudged)} kept open without the data to judge them" if a.unjudged else "")
                  + (f"; {len(a.digest)} item(s) for the digest, not for on-call" if a.digest else ""))
    if report.delivery and report.delivery.queued:
        d = report.delivery
        where = f"{len(d.sent)} sent to {d.target}" if d.sent else ""
        local = f"{len(d.kept_local)} written to the outbox" if d.kept_local else ""
        failed = f"{len(d.failed)} pending after a delivery failure" if d.failed else ""
        out.print("messages: " + ", ".join(x for x in (where, local, failed) if x))
    if report.report:
        out.print(f"report: {report.report.path}")
    for p in report.failed_partitions:
        err.print(f"[red]FAILED[/red] {p.feed} dt={p.day}: {p.error}", highlight=False)


def _exit_for(report: nightly.RunReport) -> None:
    if report.failed_partitions:
        err.print(f"{len(report.failed_partitions)} partition(s) failed their data checks; the rest of the "
                  "night completed. Fix or replace the files named above and run the same date again.")
    _say_undelivered(report.undelivered)
    if not report.ok:
        raise typer.Exit(1)


def _say_undelivered(undelivered: list[tuple[str, str, str | None]]) -> None:
    for message_id, channel, error in undelivered:
        err.print(f"[red]NOT DELIVERED[/red] {message_id} to {channel}: {error}", highlight=False)
    if undelivered:
        err.print(f"{len(undelivered)} message(s) could not be delivered; they stay in the outbox (ops.outbox) and "
                  "the next run sends them. Once Slack answers again, `mlwatch deliver` sends them now.")


@app.command()
def run(date: str = typer.Option(..., "--date", "-d", help="Logical date to process (YYYY-MM-DD)."),
        config: Optional[Path] = ConfigOption) -> None:
    """Run the nightly job for one date: ingest, build the warehouse, alert."""
    cfg = _config(config)
    from mlwatch import nightly   # the night's libraries (scipy, pandas, dbt) load only for the commands using them

    report = nightly.run_night(cfg, _date(date, "--date"), progress=_Progress())
    _summary(report)
    _exit_for(report)


@app.command()
def backfill(start: str = typer.Option(..., "--start", help="First date (YYYY-MM-DD)."),
             end: str = typer.Option(..., "--end", help="Last date (YYYY-MM-DD)."),
             backtest: bool = typer.Option(True, "--backtest/--no-backtest",
                                           help="Replay the alert rules on every night (default), or judge only "
                                                "the last one (faster: a rebuild of the marts after a data fix)."),
             config: Optional[Path] = ConfigOption) -> None:
    """The same warehouse as nightly runs of every day START..END, in one pass, with the alerts
    each night would have raised (never sent; those still open on END are told once) and the
    alert load against the budget."""
    cfg = _config(config)
    from mlwatch import nightly

    report = nightly.backfill(cfg, _date(start, "--start"), _date(end, "--end"), backtest=backtest,
                              progress=_Progress())
    _summary(report)
    _exit_for(report)


@app.command()
def deliver(config: Optional[Path] = ConfigOption) -> None:
    """Send the messages the outbox still holds (a failed delivery leaves them pending)."""
    from mlwatch.alerts import delivery
    from mlwatch.warehouse import connect_writer

    cfg = _config(config)
    with connect_writer(cfg.warehouse) as con:
        result = delivery.deliver(con, cfg)
    if not result.queued:
        out.print("Nothing pending: every message has been delivered.")
    if result.sent:
        out.print(f"{len(result.sent)} message(s) sent to {result.target}")
    if result.kept_local:
        out.print(f"{len(result.kept_local)} message(s) written to {Path(cfg.reports) / 'outbox.jsonl'} "
                  "(Slack is not configured)")
    _say_undelivered(result.undelivered)
    if result.undelivered:
        raise typer.Exit(1)


@app.command()
def sql(query: str = typer.Argument(..., help="SQL query (read-only)."),
        format: str = typer.Option("table", "--format", "-f", help="table, csv or json."),
        max_rows: int = typer.Option(200, "--max-rows", help="Rows shown in table format."),
        config: Optional[Path] = ConfigOption) -> None:
    """Read-only ad-hoc SQL over the warehouse."""
    if format not in ("table", "csv", "json"):
        raise UsageError(f"--format must be table, csv or json, got {format!r}")
    cfg = _config(config)
    for result in adhoc.run_query(cfg.warehouse, query):
        if format == "csv":
            sys.stdout.write(adhoc.to_csv(result))
        elif format == "json":
            sys.stdout.write(adhoc.to_json(result) + "\n")
        else:
            table = _table(result.columns)
            shown = result.rows[:max_rows]
            for row in shown:
                table.add_row(*[_cell(v) for v in row])
            out.print(table)
            if any(_cell(v) != str(v) for row in shown for v in row if isinstance(v, float)):
                out.print("[dim]Doubles shown to 6 significant digits; --format csv or json gives every digit.[/dim]")
            if len(result.rows) > max_rows:
                out.print(f"[dim]{len(result.rows) - max_rows} more rows; use --max-rows or --format csv[/dim]")


@app.command()
def alerts(status: Optional[str] = typer.Option(None, "--status", help="open, resolved or digest."),
           origin: Optional[str] = typer.Option(
               None, "--origin", help="night (opened by a nightly run) or backtest (by a backfill's replay)."),
           config: Optional[Path] = ConfigOption) -> None:
    """The alert table, newest first."""
    if status is not None and status not in ("open", "resolved", "digest"):
        raise UsageError(f"--status must be open, resolved or digest, got {status!r}")
    if origin is not None and origin not in ("night", "backtest"):
        raise UsageError(f"--origin must be night or backtest, got {origin!r}")
    cfg = _config(config)
    conditions = [f"status = '{status}'" if status else None, f"origin = '{origin}'" if origin else None]
    where = " AND ".join(c for c in conditions if c)
    query = ("SELECT alert_id, status, severity, kind, model_name, since, first_seen, last_seen, playbook, origin, "
             f"title FROM marts.alerts {'WHERE ' + where if where else ''} "
             "ORDER BY last_seen DESC, severity DESC, alert_id")
    try:
        [result] = adhoc.run_query(cfg.warehouse, query)
    except UsageError as exc:
        if "marts.alerts" in str(exc) or "does not exist" in str(exc):
            out.print("No alerts yet: run `mlwatch run --date D` first.")
            return
        raise
    if not result.rows:
        opened_by = {"night": "opened by a nightly run", "backtest": "from a backfill's backtest"}.get(origin or "")
        out.print(f"No {' '.join(filter(None, [status, 'alerts', opened_by]))} in {cfg.warehouse}.")
        return
    table = _table(result.columns)
    for row in result.rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    out.print(table)


@app.command()
def tables(name: Optional[str] = typer.Argument(None, help="A table (marts.performance, or performance) or a schema."),
           config: Optional[Path] = ConfigOption) -> None:
    """The warehouse's tables with their descriptions; with NAME, a table's columns or a schema's tables."""
    from mlwatch.warehouse import connect_reader

    cfg = _config(config)
    with connect_reader(cfg.warehouse) as con:
        listed = con.execute(
            "SELECT schema_name, table_name, comment, estimated_size FROM duckdb_tables() WHERE NOT internal "
            "UNION ALL SELECT schema_name, view_name, comment, NULL FROM duckdb_views() WHERE NOT internal "
            "AND schema_name NOT IN ('information_schema', 'pg_catalog') ORDER BY 1, 2").fetchall()
        wanted = (name or "").strip().lower()
        exact = [t for t in listed if wanted in (f"{t[0]}.{t[1]}".lower(), t[1].lower())]
        if wanted and len(exact) == 1:
            schema, table, comment, rows = exact[0]
            columns = con.execute("SELECT column_name, data_type, comment FROM duckdb_columns() WHERE schema_name = ? "
                                  "AND table_name = ? ORDER BY column_index", [schema, table]).fetchall()
            out.print(f"[bold]{schema}.{table}[/bold]" + (f" (about {rows:,} rows)" if rows is not None else ""))
            if comment:
                out.print(comment, highlight=False)
            grid = _table(["column", "type", "description"])
            for column, kind, text in columns:
                grid.add_row(column, kind, text or "")
            out.print(grid)
            return
        shown = [t for t in listed if t[0].lower() == wanted] if wanted else listed
        if wanted and not shown:
            close = [f"{s}.{t}" for s, t, _, _ in listed if wanted.split(".")[-1] in t.lower()][:8]
            raise UsageError(f"no table or schema {name!r} in {cfg.warehouse}"
                             + (f"; did you mean {', '.join(close)}?" if close else "; `mlwatch tables` lists them"))
    grid = _table(["table", "rows", "description"])
    for schema, table, comment, rows in shown:
        grid.add_row(f"{schema}.{table}", "" if rows is None else f"{rows:,}", (comment or "").split(". ")[0])
    out.print(grid)
    out.print("[dim]`mlwatch tables NAME` shows a table's columns.[/dim]")


@app.command()
def report(date: str = typer.Option(..., "--date", "-d", help="The day to report on (YYYY-MM-DD)."),
           config: Optional[Path] = ConfigOption) -> None:
    """Write the daily HTML report for a day from the warehouse, and print its path."""
    from mlwatch import report as daily_report
    from mlwatch.warehouse import connect_reader

    cfg = _config(config)
    day = _date(date, "--date")
    if not Path(cfg.warehouse).exists():
        raise UsageError(f"no warehouse at {cfg.warehouse}: run `mlwatch run --date {day}` (or `mlwatch demo`) first")
    with connect_reader(cfg.warehouse) as con:
        # The nightly job reports on its night whatever landed; asked for any day, refuse one
        # without data rather than write an empty page that reads as a calm night.
        daily_report.require_data(con, cfg, day)
        written = daily_report.write(con, cfg, day)
    err.print(f"{written.charts} charts; index at {Path(cfg.reports) / 'index.html'}", highlight=False)
    out.print(str(written.path), highlight=False)


@app.command()
def rollback(model: str = typer.Option(..., "--model", "-m", help="The model to roll back."),
             to: str = typer.Option(..., "--to", help="The version to go back to."),
             reason: str = typer.Option(..., "--reason", help="Why (an alert id, an incident, a sentence)."),
             config: Optional[Path] = ConfigOption) -> None:
    """Record a rollback in governance.actions; it reaches Airflow as the asset mlwatch/rollback/MODEL."""
    from mlwatch import governance
    from mlwatch.warehouse import connect_writer

    cfg = _config(config)
    with connect_writer(cfg.warehouse) as con:
        action = governance.record_rollback(con, cfg, model, to, reason)
    out.print(f"Recorded {action['action_id']}: roll {model} back from {action['from_version']} to {to} "
              f"({reason}), by {action['actor']}.", highlight=False)
    out.print(f"The Airflow asset event {action['asset']} is emitted by the next run of the mlwatch_governance "
              "DAG (every 10 minutes), or now with: airflow dags trigger mlwatch_governance", highlight=False)


@app.command()
def demo(days: int = typer.Option(60, help="Days of data."),
         fraud_per_day: int = typer.Option(30_000, help="card_fraud predictions per day."),
         eta_per_day: int = typer.Option(15_000, help="delivery_eta predictions per day."),
         seed: int = typer.Option(20260801, help="Random seed; the same seed gives the same files."),
         replay_from: Optional[str] = typer.Option(
             None, "--replay-from",
             help="Build up to the day before in one pass, then run every night from this date on as the "
                  "nightly DAG would (slower: a backfill replays the alert rules night by night already)."),
         backtest: bool = typer.Option(True, "--backtest/--no-backtest",
                                       help="Replay the alert rules on every night, to show each incident's "
                                            "alert (default), or judge the last night only (about 5x faster)."),
         config: Optional[Path] = ConfigOption) -> None:
    """Make the sample landing zone and run the pipeline over it."""
    from mlwatch.demo import runner as demo_module
    from mlwatch.demo.generator import DemoSpec

    cfg = demo_module.prepare_config(config, err)
    spec = DemoSpec(days=days, fraud_per_day=fraud_per_day, eta_per_day=eta_per_day, seed=seed)
    progress = _Progress()
    demo_module.make_landing(cfg, spec, progress)
    if replay_from is None:
        from mlwatch import nightly

        report = nightly.backfill(cfg, spec.start, spec.end, backtest=backtest, progress=progress)
    else:
        report = demo_module.replay(cfg, spec, _date(replay_from, "--replay-from"), progress)
    _summary(report)
    demo_module.print_next_steps(cfg, spec, out)
    _exit_for(report)


@app.callback()
def _options(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what the library does.")) -> None:
    # Progress and errors are printed by the commands; library logs are for -v and Airflow.
    logging.getLogger().setLevel(logging.INFO if verbose else logging.CRITICAL)
    # Except what the warehouse says about waiting: a run waiting for another writer, a
    # reader shown the published snapshot. Those are always printed.
    notices = logging.getLogger("mlwatch.warehouse")
    notices.setLevel(logging.INFO if verbose else logging.WARNING)
    if not any(isinstance(h, _StderrNow) for h in notices.handlers):
        handler = _StderrNow()
        handler.setFormatter(logging.Formatter("%(message)s"))
        notices.addHandler(handler)
        notices.propagate = False


class _StderrNow(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record comes (a test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def main() -> None:
    logging.basicConfig(level=logging.CRITICAL, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()  # click itself answers usage errors, with exit status 2
    except MlwatchError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
