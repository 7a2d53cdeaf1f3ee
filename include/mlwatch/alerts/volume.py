"""Feeds that went quiet: a day without data is never an all-clear.

Each feed's usual volume is learned from its own history in marts.data_quality, per model
(the stages feed: the pipeline) and day of the week: the median rows of the same weekday
over the last VOLUME_WEEKS weeks. On the run date:

  no_data      the feed delivered nothing although it had data on at least MIN_USUAL_DAYS
               of those weekdays (labels: of the last 7 days, since they come in any order)
  volume_drop  it delivered less than DROP_SHARE of the usual rows

The labels feed is judged on volume only when it is steady (its weekday rows vary
little), since delayed outcomes arrive in bursts.
"""

from __future__ import annotations

import datetime as dt
import statistics

import duckdb

from mlwatch.alerts.candidate import PIPELINE, Candidate
from mlwatch.config import Config
from mlwatch.warehouse import table_exists

VOLUME_WEEKS = 4
MIN_USUAL_DAYS = 3
DROP_SHARE = 0.5
FEEDS = ("predictions", "labels", "costs", "stages")


def feed_volume(con: duckdb.DuckDBPyConnection, config: Config, run_date: dt.date) -> list[Candidate]:
    if not table_exists(con, "marts", "data_quality"):
        return []
    since = run_date - dt.timedelta(weeks=VOLUME_WEEKS)
    rows = con.execute(
        "SELECT model_name, feed, day, n_rows FROM marts.data_quality WHERE day BETWEEN ? AND ? "
        "AND (list_contains(?, model_name) OR model_name = ?)",
        [since, run_date, list(config.models), PIPELINE]).fetchall()
    by_feed: dict[tuple[str, str], dict[dt.date, int]] = {}
    for model, feed, day, n in rows:            # one row per model, day and feed
        by_feed.setdefault((model, feed), {})[day] = n
    found = []
    owners = [*sorted(config.models), PIPELINE] if config.pipeline else sorted(config.models)
    for model in owners:
        for feed in FEEDS:
            if (feed == "stages") != (model == PIPELINE):
                continue
            candidate = _judge(model, feed, by_feed.get((model, feed), {}), run_date)
            if candidate:
                found.append(candidate)
    return found


def _judge(model: str, feed: str, days: dict[dt.date, int], run_date: dt.date) -> Candidate | None:
    same_weekday = [days.get(run_date - dt.timedelta(weeks=w), 0) for w in range(1, VOLUME_WEEKS + 1)]
    if feed == "labels":
        recent = [days.get(run_date - dt.timedelta(days=d), 0) for d in range(1, 8)]
        usual_days = sum(1 for n in recent if n > 0)
        usual = statistics.median([n for n in recent if n > 0]) if usual_days else 0
        steady = usual_days >= 6 and max(recent) <= 3 * max(min(recent), 1)
    else:
        usual_days = sum(1 for n in same_weekday if n > 0)
        usual = statistics.median([n for n in same_weekday if n > 0]) if usual_days else 0
        steady = True
    if usual_days < MIN_USUAL_DAYS:
        return None                   # not enough history to know what usual is
    tonight = days.get(run_date, 0)
    last = max((d for d, n in days.items() if n > 0 and d < run_date), default=None)
    subject = "the pipeline" if model == PIPELINE else model
    facts = [("Model", model if model != PIPELINE else "the pipeline (stages)"), ("Feed", feed),
             ("Usual", f"{usual:,.0f} rows" + (" on this weekday" if feed != "labels" else " a day")),
             ("Last day with data", last.isoformat() if last else "none in the last weeks")]
    command = (f'mlwatch sql "select day, feed, n_rows, n_accepted, n_quarantined, failure from marts.data_quality '
               f"where model_name = '{model}' and feed = '{feed}' order by day desc limit 14\"")
    if tonight == 0:
        return Candidate(
            kind="no_data", model_name=model, dedupe_key=f"no_data|{model}|{feed}",
            severity="critical" if feed == "predictions" else "warning",
            title=f"No {feed} for {subject} on {run_date}: the feed delivered nothing (usually {usual:,.0f} rows)",
            run_date=run_date, since=(last + dt.timedelta(days=1)) if last else run_date, metric=f"rows:{feed}",
            value=0, reference_value=float(usual),
            evidence={"facts": [*facts, ("How bad", "0 rows")], "feed": feed, "command": command})
    if steady and tonight < DROP_SHARE * usual:
        return Candidate(
            kind="volume_drop", model_name=model, dedupe_key=f"volume_drop|{model}|{feed}", severity="warning",
            title=f"{subject}: {feed} fell to {tonight:,} rows on {run_date} "
                  f"({tonight / usual:.0%} of the usual {usual:,.0f})",
            run_date=run_date, since=run_date, metric=f"rows:{feed}", value=float(tonight),
            reference_value=float(usual),
            evidence={"facts": [*facts, ("How bad", f"{tonight:,} rows, {tonight / usual:.0%} of usual")],
                      "feed": feed, "command": command})
    return None
