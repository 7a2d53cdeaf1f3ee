"""The alert load: what a range of nights opened, against the decision budget.

A human can act on a few alerts a day (slack.alerts_per_day per channel). The load says,
per night and channel, how many alerts would have paged (opened a message; those over the
budget went to the digest), per kind, and which nights went over. A backfill prints it for
its nights (mlwatch.backtest), so that a team sees what its configuration would have done
over its own history before going live; the daily report shows it for its history.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

import duckdb

from mlwatch.alerts import messages
from mlwatch.config import PLAYBOOK_DIGEST, Config
from mlwatch.warehouse import table_exists


@dataclass
class Load:
    """The alerts a range of nights opened, against the decision budget (slack.alerts_per_day)."""
    start: dt.date
    end: dt.date
    budget: int
    # (night, channel) -> alerts that would have paged (opened a message) that night
    pages: dict[tuple[dt.date, str], int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    digest: int = 0           # drift without impact and the kinds routed to the digest

    @property
    def total(self) -> int:
        return sum(self.pages.values())

    @property
    def over_budget(self) -> list[tuple[dt.date, str, int]]:
        return [(night, channel, n) for (night, channel), n in sorted(self.pages.items()) if n > self.budget]

    @property
    def busiest(self) -> tuple[dt.date, str, int] | None:
        if not self.pages:
            return None
        (night, channel), n = max(self.pages.items(), key=lambda item: (item[1], item[0]))
        return night, channel, n

    def lines(self) -> list[str]:
        """The load in a few lines, for the console and the report."""
        nights = (self.end - self.start).days + 1
        if not self.total:
            head = f"Alert load {self.start}..{self.end} ({nights} nights): nothing would have paged"
        else:
            night, channel, n = self.busiest
            head = (f"Alert load {self.start}..{self.end} ({nights} nights): {self.total} alert(s) would have paged "
                    f"on {len({k[0] for k in self.pages})} night(s); the busiest, {night}, {n} in {channel} "
                    f"(budget {self.budget} a day per channel)")
        lines = [head]
        if self.by_kind:
            lines.append("  by kind: " + ", ".join(f"{kind} {n}" for kind, n in sorted(self.by_kind.items())))
        if self.digest:
            lines.append(f"  {self.digest} item(s) went to the digest instead (drift without impact and the like)")
        over = self.over_budget
        lines.append("  over budget: " + ("; ".join(f"{night} {channel} {n}" for night, channel, n in over)
                                          if over else "no night"))
        return lines


def alert_load(con: duckdb.DuckDBPyConnection, config: Config, start: dt.date, end: dt.date) -> Load:
    """The alerts opened on the nights start..end, nightly or backtested, per night and channel."""
    result = Load(start=start, end=end, budget=config.slack.alerts_per_day)
    if not table_exists(con, "marts", "alerts"):
        return result
    cursor = con.execute("SELECT first_seen, kind, model_name, playbook FROM marts.alerts "
                         "WHERE first_seen BETWEEN ? AND ? ORDER BY first_seen, alert_id", [start, end])
    pages: Counter = Counter()
    kinds: Counter = Counter()
    for first_seen, kind, model_name, playbook in cursor.fetchall():
        if playbook == PLAYBOOK_DIGEST:         # routed to the digest: never a page (its status may be resolved)
            result.digest += 1
            continue
        pages[(first_seen, messages.channel(config, {"model_name": model_name}))] += 1
        kinds[kind] += 1
    result.pages, result.by_kind = dict(pages), dict(kinds)
    return result
