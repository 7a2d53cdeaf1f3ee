"""The nightly job, step by step. The CLI and the Airflow DAGs call these same functions.

  ingest  -> load the night's partitions (and any late or changed older ones)
  drift   -> histograms of the new days, drift statistics of the night's windows
  backtest-> a backfill only: replay the alert rules on each night of its range (mlwatch.backtest)
  build   -> dbt build of the warehouse for the night
  alerts  -> evaluate the alert rules, update marts.alerts
  notify  -> queue and deliver messages (Slack, or the local outbox)
  report  -> the daily HTML report and its summary message

Every step that writes takes the warehouse's writer lock, so steps of different runs
never interleave their writes. Every step also records its own rows and seconds
(mlwatch.self_measure), so the constraint ledger shows mlwatch's bottleneck too.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Callable

from mlwatch import feature_value, ingest, self_measure, snapshot, table_docs, transform, validation
from mlwatch import backtest as alert_backtest
from mlwatch.alerts import delivery, lifecycle, messages, playbooks, rules
from mlwatch.alerts.load import Load, alert_load
from mlwatch.config import Config
from mlwatch.feeds import FEED_NAMES
from mlwatch.warehouse import connect_writer, table_exists, writer_lock

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class RunReport:
    start: dt.date
    end: dt.date
    partitions: list[ingest.PartitionResult] = field(default_factory=list)
    model_seconds: dict[str, float] = field(default_factory=dict)
    alerts: lifecycle.LifecycleResult | None = None
    delivery: delivery.DeliveryResult | None = None
    report: object | None = None          # mlwatch.report.Written
    # Messages the outbox still holds at the end of the night (message_id, channel, error)
    undelivered: list[tuple[str, str, str | None]] = field(default_factory=list)
    replayed: int = 0                     # a backfill: nights whose alert rules it replayed
    load: Load | None = None              # a backfill: the alerts its nights opened, against the budget

    @property
    def failed_partitions(self) -> list[ingest.PartitionResult]:
        return [p for p in self.partitions if p.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed_partitions and not self.undelivered


def _say(progress: Progress | None, text: str) -> None:
    log.info(text)
    if progress:
        progress(text)


def step_ingest(config: Config, run_date: dt.date, *, reread_from: dt.date | None = None,
                feeds: tuple[str, ...] = FEED_NAMES, progress: Progress | None = None) -> list[ingest.PartitionResult]:
    def report(result: ingest.PartitionResult) -> None:
        for f in result.files:
            if f.unknown_columns:
                _say(progress, f"ingest {result.feed} dt={result.day}: {f.file.rsplit('/', 1)[-1]} has column(s) "
                               f"{', '.join(f.unknown_columns)} that the contract and the configuration do not name; "
                               "not loaded (ops.contract_warnings)")
        if result.status == "failed":
            _say(progress, f"ingest {result.feed} dt={result.day}: FAILED: {result.error}")
        elif result.rows_quarantined or not backfilling:
            _say(progress, f"ingest {result.feed} dt={result.day}: {result.rows_accepted:,} accepted, "
                           f"{result.rows_quarantined:,} quarantined")

    # A backfill loads every day of every feed: the clean partitions go unsaid, so that
    # the failed and the quarantining ones stand out (ops.ingest_partitions has them all).
    backfilling = reread_from is not None and reread_from < run_date

    validator = validation.ContractValidator(config)
    part = feeds[0] if len(feeds) == 1 else ""
    with connect_writer(config.warehouse) as con:
        results: list[ingest.PartitionResult] = []
        try:
            with self_measure.measuring() as loading:
                results = ingest.ingest(con, config, run_date, reread_from=reread_from, feeds=feeds,
                                        progress=report, announce=lambda text: _say(progress, f"ingest {text}"),
                                        validator=validator)
        finally:
            loading.rows = sum(r.rows_read for r in results)
            loading.seconds -= validator.seconds
            checked = self_measure.Measurement(rows=validator.rows_validated, seconds=validator.seconds)
            self_measure.record(con, run_date, "ingest", loading, part)
            self_measure.record(con, run_date, "validation", checked, part)
        return results


def step_drift(config: Config, run_date: dt.date, first_window_end: dt.date | None = None, *,
               progress: Progress | None = None) -> int:
    from mlwatch.drift import compute

    with connect_writer(config.warehouse) as con:
        ingest.ensure_tables(con, config)
        with self_measure.recorded(con, run_date, "statistics") as measured:
            rows = measured.rows = compute.run(con, config, run_date, first_window_end or run_date,
                                               progress=lambda text: _say(progress, f"drift {text}"))
            measured.rows += feature_value.run(con, config, run_date, first_window_end or run_date)
    _say(progress, f"drift {run_date}: {rows:,} statistics")
    return rows


def step_build(config: Config, run_date: dt.date, first_window_end: dt.date | None = None, *,
               progress: Progress | None = None) -> dict[str, float]:
    with writer_lock(config.warehouse):
        with connect_writer(config.warehouse, locked=True) as con:
            # dbt reads these as sources: make sure they exist even before any data landed.
            ingest.ensure_tables(con, config)
            from mlwatch.drift import compute

            compute.ensure_tables(con)
            feature_value.ensure_tables(con)
            self_measure.ensure_tables(con)
            # Created before the build, so that the build's table descriptions reach them too.
            from mlwatch import governance

            lifecycle.ensure_tables(con)
            governance.ensure_tables(con)
            delivery.ensure_tables(con)
        try:
            with self_measure.measuring() as measured:
                timings = transform.build(config, run_date, first_window_end,
                                          progress=(lambda text: _say(progress, f"dbt {text}")))
            with connect_writer(config.warehouse, locked=True) as con:
                # Rebuilt tables lose their comments: the descriptions go back where analysts look.
                table_docs.apply(con, transform.manifest_path(config))
            return timings
        finally:
            with connect_writer(config.warehouse, locked=True) as con:
                measured.rows = _rows_rebuilt(con, config, run_date, first_window_end or run_date)
                self_measure.record(con, run_date, "dbt_build", measured)


def _rows_rebuilt(con, config: Config, run_date: dt.date, first_window_end: dt.date) -> int:
    """Prediction rows in the span a build recomputes (late labels reach back label_delay_days)."""
    if not table_exists(con, "raw", "predictions"):
        return 0
    since = first_window_end - dt.timedelta(days=config.max_label_delay_days + config.max_window_days)
    return con.execute("SELECT count(*) FROM raw.predictions WHERE _partition_date BETWEEN ? AND ?",
                       [since, run_date]).fetchone()[0]


def step_alerts(config: Config, run_date: dt.date, *, progress: Progress | None = None,
                backtest: bool = False) -> lifecycle.LifecycleResult:
    """Evaluate the rules, move the alert lifecycle on, and record the governance actions they call for.
    `backtest`: the last night of a backfill, whose new alerts have origin 'backtest' too."""
    from mlwatch import governance

    with connect_writer(config.warehouse) as con, self_measure.recorded(con, run_date, "alerting") as measured:
        lifecycle.ensure_tables(con)
        governance.ensure_tables(con)
        candidates = rules.evaluate(con, config, run_date)
        measured.rows = len(candidates)
        result = lifecycle.apply(con, config, run_date, candidates, backtest=backtest)
        for alert_id in result.opened:
            alert = con.execute("SELECT * FROM marts.alerts WHERE alert_id = ?", [alert_id]).fetchone()
            columns = [d[0] for d in con.description]
            alert = dict(zip(columns, alert))
            playbook = playbooks.lookup(config, alert["playbook"])
            if playbook and playbook.action == "retrain":
                governance.request_retrain(con, alert)
        decisions = governance.record_gate_decisions(con, config, run_date) if not result.skipped else []
    _say(progress, f"alerts {run_date}: {len(result.opened)} opened, {len(result.updated)} still open "
                   f"({len(result.escalated)} escalated), "
                   f"{len(result.resolved)} resolved, {len(result.unjudged)} not judged (no data), "
                   f"{len(result.suppressed)} explained by another alert, "
                   f"{len(result.digest)} in the digest"
                   + (" (lifecycle already past this night)" if result.skipped else ""))
    for d in decisions:
        _say(progress, f"promotion gate {d['model_name']} {d['to_version']}: {d['action']} ({d['reason']})")
    return result


def step_notify(config: Config, run_date: dt.date, *, progress: Progress | None = None) -> delivery.DeliveryResult:
    with connect_writer(config.warehouse) as con, self_measure.recorded(con, run_date, "notify") as measured:
        lifecycle.ensure_tables(con)
        delivery.enqueue(con, config, run_date)
        result = delivery.deliver(con, config)
        measured.rows = len(result.sent) + len(result.kept_local) + len(result.failed)
    if result.kept_local:
        _say(progress, f"notify: Slack is not configured; {len(result.kept_local)} message(s) written to "
                       f"{config.reports / 'outbox.jsonl'}")
    if result.sent:
        _say(progress, f"notify: {len(result.sent)} message(s) sent to {result.target}")
    for message_id, error in result.failed:
        _say(progress, f"notify: {message_id} not delivered ({error}); it stays in the outbox for the next run")
    if result.waiting:
        _say(progress, f"notify: {len(result.waiting)} edit(s) wait for the message they edit to be delivered")
    return result


def step_report(config: Config, run_date: dt.date, *, progress: Progress | None = None):
    """Write the day's HTML report and post its summary with a link (once per night).

    Returns the page written and what the outbox still holds after this last delivery.
    """
    from mlwatch import report

    with connect_writer(config.warehouse) as con, self_measure.recorded(con, run_date, "reporting") as measured:
        written = report.write(con, config, run_date)
        delivery.enqueue_report(con, config, run_date, written.summary, messages.report_link(config, run_date))
        sent = delivery.deliver(con, config)
        measured.rows = written.charts
    _say(progress, f"report {run_date}: {written.path} ({written.charts} charts)")
    # Last: readers see this night while the next run writes (mlwatch.snapshot).
    snapshot.publish(config.warehouse, run_date)
    if sent.kept_local:
        _say(progress, f"report: summary written to {config.reports / 'outbox.jsonl'} (Slack is not configured)")
    return written, sent.undelivered


def run_night(config: Config, run_date: dt.date, *, progress: Progress | None = None) -> RunReport:
    report = RunReport(start=run_date, end=run_date)
    report.partitions = step_ingest(config, run_date, progress=progress)
    step_drift(config, run_date, progress=progress)
    report.model_seconds = step_build(config, run_date, progress=progress)
    report.alerts = step_alerts(config, run_date, progress=progress)
    report.delivery = step_notify(config, run_date, progress=progress)
    report.report, report.undelivered = step_report(config, run_date, progress=progress)
    return report


def step_backtest(config: Config, start: dt.date, end: dt.date, *, progress: Progress | None = None) -> int:
    """Replay the alert rules on the nights start..end-1 not judged yet (mlwatch.backtest)."""
    with self_measure.measuring() as measured:
        measured.rows = alert_backtest.replay(config, start, end,
                                              progress=lambda text: _say(progress, f"backtest {text}"))
    with connect_writer(config.warehouse) as con:
        self_measure.record(con, end, "backtest", measured)
    return measured.rows


def backfill(config: Config, start: dt.date, end: dt.date, *, backtest: bool = True,
             progress: Progress | None = None) -> RunReport:
    """The warehouse of nightly runs start..end, built in one pass, with their alerts.

    Every partition of start..end is read again. The alert rules are replayed on every
    night of the range with what that night knew (mlwatch.backtest): marts.alerts gets
    what nightly runs would have decided, with origin 'backtest', and nobody is told
    about conditions of the past. The marts are then built once for the whole range, and
    the last night is judged and delivered as a nightly run's: the alerts still open
    then are told once. Without `backtest` (a rebuild of the marts after a data fix, say)
    only the last night is judged.
    """
    if start > end:
        from mlwatch.errors import UsageError

        raise UsageError(f"backfill start {start} is after its end {end}")
    report = RunReport(start=start, end=end)
    report.partitions = step_ingest(config, end, reread_from=start, progress=progress)
    step_drift(config, end, start, progress=progress)
    if backtest:
        report.replayed = step_backtest(config, start, end, progress=progress)
    report.model_seconds = step_build(config, end, start, progress=progress)
    report.alerts = step_alerts(config, end, progress=progress, backtest=True)
    report.delivery = step_notify(config, end, progress=progress)
    report.report, report.undelivered = step_report(config, end, progress=progress)
    with connect_writer(config.warehouse) as con:
        report.load = alert_load(con, config, start, end)
    return report
