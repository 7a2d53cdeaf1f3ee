"""Messages as data, rendered for Slack (Block Kit) by one formatter.

The message model says what an on-call engineer needs and nothing about Slack: what
broke, where (model, version, segment), how badly (value, interval, reference), since
when, the playbook and the exact command to run, and who owns it. Four shapes:

  alert_opened    a new alert, posted to the owner's channel
  alert_update    the same alert the next nights: the original message is edited
  alert_escalated its severity rose: the message is edited and a thread reply, shown in the
                  channel too, tells the owner what rose and why
  alert_resolved  the condition cleared: the message is edited and a thread reply sent
  alert_settled   an estimate before labels, confirmed or withdrawn by them: the message
                  is edited and a thread reply sent (alerts/settlement.py)
  digest          one a day per channel: drift without impact, and alerts over budget

Golden files in tests/golden pin every rendered shape.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlwatch.alerts import playbooks
from mlwatch.config import Config
from mlwatch.formatting import model_label
from mlwatch.warehouse import table_exists

SEVERITY_MARK = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}


@dataclass(frozen=True)
class Message:
    message_id: str               # unique per thing said; the outbox's key
    channel: str
    run_date: dt.date
    kind: str                     # alert_opened | alert_update | alert_escalated | alert_resolved | alert_settled
                                  # | digest | report
    headline: str
    severity: str = "info"
    alert_id: str | None = None
    status: str | None = None     # a line under the headline: still open since ..., resolved on ...
    facts: list[tuple[str, str]] = field(default_factory=list)
    playbook_title: str | None = None
    steps: list[str] = field(default_factory=list)
    command: str | None = None    # the one command to act
    look: str | None = None       # a query for a first look, when the command to act is another
    owner: str | None = None
    items: list[tuple[str, str]] = field(default_factory=list)   # digest lines: (title, detail)
    link: str | None = None       # the daily report

    def to_json(self) -> str:
        data = asdict(self)
        data["run_date"] = self.run_date.isoformat()
        return json.dumps(data, sort_keys=True)


def previous_version(con, model_name: str, version: str | None) -> str | None:
    """The version that served before `version` (by first prediction), for rollback commands."""
    if not version or version == "__all__" or not table_exists(con, "raw", "predictions"):
        return None
    row = con.execute(
        "WITH firsts AS (SELECT model_version, min(predicted_at) AS first_at FROM raw.predictions "
        "WHERE model_name = ? GROUP BY model_version) "
        "SELECT model_version FROM firsts WHERE first_at < (SELECT first_at FROM firsts WHERE model_version = ?) "
        "ORDER BY first_at DESC LIMIT 1",
        [model_name, version],
    ).fetchone()
    return row[0] if row else None


def _date(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _owner(config: Config, alert: dict[str, Any]) -> str | None:
    model = config.models.get(alert["model_name"])
    if model:
        return model.owner
    # A pipeline alert (several models at once) belongs to every affected model's owner.
    affected = json.loads(alert.get("evidence") or "{}").get("models") or []
    owners = [config.models[name].owner for name in affected if name in config.models and config.models[name].owner]
    return " ".join(dict.fromkeys(owners)) or None


def channel(config: Config, alert: dict[str, Any]) -> str:
    """The channel an alert's messages go to: its model's, else the default (a pipeline alert)."""
    if alert["model_name"] in config.models:
        return config.channel_for(alert["model_name"])
    return config.slack.default_channel


def _facts(alert: dict[str, Any]) -> list[tuple[str, str]]:
    evidence = json.loads(alert.get("evidence") or "{}")
    if evidence.get("facts"):  # the rule said it in its own words
        facts = [(label, value) for label, value in evidence["facts"]]
    else:
        facts = _metric_facts(alert, evidence)
    facts.append(("Since", _date(alert.get("since") or alert["first_seen"])))
    return facts


def _metric_facts(alert: dict[str, Any], evidence: dict[str, Any]) -> list[tuple[str, str]]:
    """Facts from an alert's metric columns, for rules that give none of their own."""
    facts = [("Model", model_label(alert["model_name"]))]
    if alert.get("model_version") and alert["model_version"] != "__all__":
        facts.append(("Version", alert["model_version"]))
    if alert.get("segment") and alert["segment"] != "__all__":
        facts.append(("Segment", f"{alert['segment']} = {alert['segment_value']}"))
    if alert.get("metric") and alert.get("value") is not None:
        interval = ""
        if alert.get("ci_low") is not None and alert.get("ci_high") is not None:
            interval = f", 95% CI [{alert['ci_low']:.4f}, {alert['ci_high']:.4f}]"
        reference = f" vs reference {alert['reference_value']:.4f}" if alert.get("reference_value") is not None else ""
        window = f" ({alert['window_days']}-day window)" if alert.get("window_days") else ""
        facts.append(("How bad", f"{alert['metric']} {alert['value']:.4f}{interval}{reference}{window}"))
    if "relative_degradation" in evidence and "tolerance" in evidence:
        facts.append(("Change", f"{evidence['relative_degradation']:.1%} worse (tolerance {evidence['tolerance']:.1%})"))
    if "n_labeled" in evidence:
        coverage = evidence.get("label_coverage")
        shown = f", label coverage {coverage:.1%}" if coverage is not None else ""
        facts.append(("Evidence", f"{evidence['n_labeled']:,} labeled predictions{shown}"))
    return facts


def report_link(config: Config, day: dt.date) -> str:
    """Where readers open the day's report: under report.url when configured, else the file itself."""
    if config.report.url:
        return f"{config.report.url.rstrip('/')}/daily/{day.isoformat()}.html"
    return (Path(config.reports) / "daily" / f"{day.isoformat()}.html").resolve().as_uri()


def _guidance(config: Config, alert: dict[str, Any], previous: str | None, day: dt.date) -> dict[str, Any]:
    """What the message tells on-call to do: the playbook, the one command to act, a first look, the report.

    The command to act is the playbook's (rollback: with the version before), else the
    rule's (a rollback for a release's segment drop); the rule's query for a first look
    comes beside it.
    """
    evidence = json.loads(alert.get("evidence") or "{}")
    playbook = playbooks.lookup(config, alert.get("playbook"))
    previous = previous or evidence.get("previous_version") or "<previous version>"
    fill = {"model": alert["model_name"], "previous_version": previous, "alert_id": alert["alert_id"],
            "version": alert.get("model_version") or ""}
    command = look = evidence.get("command")
    if playbook and playbook.command:
        command = playbook.command.format(**fill)
    elif evidence.get("act"):
        command = evidence["act"].replace("{alert_id}", alert["alert_id"])
    steps = list(playbook.steps) if playbook else []
    if playbook and alert.get("playbook") not in config.playbooks:
        model = alert["model_name"] if alert["model_name"] in config.models else "<model>"
        steps.append(f"This is mlwatch's default playbook for {alert['kind']}: to choose your own, map "
                     f"{alert['kind']} under models.{model}.playbooks in mlwatch.yml")
    return {"playbook_title": playbook.title if playbook else None, "steps": steps, "command": command,
            "look": look if look != command else None, "link": report_link(config, day),
            "owner": _owner(config, alert), "facts": _facts(alert), "channel": channel(config, alert),
            "headline": alert["title"], "severity": alert["severity"], "alert_id": alert["alert_id"]}


def alert_opened(alert: dict[str, Any], config: Config, *, previous: str | None = None,
                 told_on: dt.date | None = None) -> Message:
    """The alert's first message, told on the night it opened, or later (`told_on`): a backfill
    tells on its last night what its replayed nights opened and did not close."""
    told_on = told_on or alert["first_seen"]
    late = None
    if told_on > alert["first_seen"]:
        late = (f"Open since {_date(alert['first_seen'])}: "
                + ("found by the backtest of `mlwatch backfill`, which replayed the nights before "
                   f"{_date(told_on)} with what each of them knew" if alert.get("origin") == "backtest"
                   else f"first told on {_date(told_on)}, the first delivery since it opened"))
    return Message(message_id=f"{alert['alert_id']}:opened", run_date=told_on, kind="alert_opened", status=late,
                   **_guidance(config, alert, previous, told_on))


def alert_update(alert: dict[str, Any], config: Config, *, previous: str | None = None) -> Message:
    nights = (alert["last_seen"] - alert["first_seen"]).days + 1
    return Message(
        message_id=f"{alert['alert_id']}:update:{_date(alert['last_seen'])}", run_date=alert["last_seen"],
        kind="alert_update",
        status=f"Still open on {_date(alert['last_seen'])} ({nights} nights; first raised {_date(alert['first_seen'])})",
        **_guidance(config, alert, previous, alert["last_seen"]))


def alert_unjudged(alert: dict[str, Any], config: Config, run_date: dt.date) -> Message:
    """The night could not judge the alert (no data for it): the message says so and it stays open."""
    return Message(
        message_id=f"{alert['alert_id']}:unjudged:{_date(run_date)}", run_date=run_date, kind="alert_update",
        status=(f"Not judged on {_date(run_date)}: {alert['unjudged_reason']}. Still open (last seen "
                f"{_date(alert['last_seen'])}): it resolves only on a night with the evidence to judge it"),
        **_guidance(config, alert, None, run_date))


def alert_escalated(alert: dict[str, Any], config: Config, *, previous: str | None = None) -> Message:
    return Message(
        message_id=f"{alert['alert_id']}:escalated:{_date(alert['escalated_on'])}", run_date=alert["escalated_on"],
        kind="alert_escalated",
        status=(f"Escalated on {_date(alert['escalated_on'])}: {alert['escalated_from']} → {alert['severity']} "
                f"(first raised {_date(alert['first_seen'])})"),
        **_guidance(config, alert, previous, alert["escalated_on"]))


def alert_resolved(alert: dict[str, Any], config: Config) -> Message:
    return Message(
        message_id=f"{alert['alert_id']}:resolved", channel=channel(config, alert), run_date=alert["resolved_on"],
        kind="alert_resolved", headline=alert["title"], severity="info", alert_id=alert["alert_id"],
        status=(f"Resolved on {_date(alert['resolved_on'])}: the condition no longer holds "
                f"(last seen {_date(alert['last_seen'])})"),
        facts=_facts(alert), owner=_owner(config, alert),
    )


def alert_settled(alert: dict[str, Any], config: Config) -> Message:
    confirmed = alert["settlement"] == "confirmed"
    return Message(
        message_id=f"{alert['alert_id']}:settled", channel=channel(config, alert), run_date=alert["settled_on"],
        kind="alert_settled", headline=f"{'Confirmed' if confirmed else 'Withdrawn'} by labels: {alert['title']}",
        severity=alert["severity"] if confirmed else "info",
        alert_id=alert["alert_id"],
        status=(f"{'Confirmed' if confirmed else 'Withdrawn'} on {_date(alert['settled_on'])}: "
                f"{alert['settlement_detail']}"),
        facts=_facts(alert), owner=_owner(config, alert),
    )


def digest(channel: str, run_date: dt.date, drift_items: list[dict], overflow: list[dict],
           budget: int, unchanged: list[dict] = ()) -> Message:
    """The day's digest: alerts over budget, new or changed drift items in full, unchanged ones counted."""
    items = [(a["title"], _digest_detail(a)) for a in overflow] + [(a["title"], _digest_detail(a)) for a in drift_items]
    parts = []
    if overflow:
        parts.append(f"{len(overflow)} alert(s) over today's budget of {budget}")
    if drift_items:
        parts.append(f"{len(drift_items)} drift item(s) without measured impact, new or changed")
    if unchanged:
        still = ", ".join(f"{_subject(a)} since {_date(a['since'] or a['first_seen'])[5:]} "
                          f"({(run_date - a['first_seen']).days + 1} nights)" for a in unchanged[:10])
        more = f" and {len(unchanged) - 10} more" if len(unchanged) > 10 else ""
        parts.append(f"still drifting, unchanged: {still}{more}")
    return Message(
        message_id=f"digest:{channel}:{run_date.isoformat()}", channel=channel, run_date=run_date, kind="digest",
        headline=f"mlwatch daily digest for {run_date.isoformat()}", severity="info",
        status="; ".join(parts), items=items,
    )


def _subject(alert: dict[str, Any]) -> str:
    """What a digest item is about, in a few words: its feature, else its title."""
    feature = json.loads(alert.get("evidence") or "{}").get("feature")
    return f"{alert['model_name']} {feature}" if feature else alert["title"]


def _digest_detail(alert: dict[str, Any]) -> str:
    facts = dict(_facts(alert))
    detail = facts.get("How bad") or facts.get("Drift") or ""
    impact = facts.get("Impact")
    return "; ".join(x for x in (detail, impact, f"`{alert['alert_id']}`") if x)


def report_summary(channel: str, run_date: dt.date, summary: dict, link: str) -> Message:
    """The morning's one-line view of the night, with a link to the daily report."""
    judged, missed = summary["slos_judged"], summary["slos_missed"]
    # A night whose alerting step failed has no alerts to count: zero would read as all clear.
    evaluated = summary.get("alerts_evaluated", True)
    facts = [("SLOs met", f"{judged - len(missed)} of {judged}"),
             ("Open alerts", f"{summary['open_alerts']} ({summary['critical_alerts']} critical)" if evaluated
              else "not evaluated (see the report)"),
             ("Digest items", str(summary["digest_items"]))]
    if summary.get("constraint"):
        facts.append(("Pipeline constraint", summary["constraint"]))
    if missed:
        facts.append(("SLOs missed", ", ".join(missed)[:1900]))
    return Message(
        message_id=f"report:{channel}:{run_date.isoformat()}", channel=channel, run_date=run_date, kind="report",
        headline=f"mlwatch daily report for {run_date.isoformat()}",
        severity="warning" if missed or summary["open_alerts"] or not evaluated else "info",
        status="All SLOs met, nothing open." if evaluated and not missed and not summary["open_alerts"] else None,
        facts=facts, link=link,
    )


def render_slack(message: Message) -> dict[str, Any]:
    """chat.postMessage / chat.update arguments (without channel and ts): fallback text and blocks."""
    if message.kind == "digest":
        return _render_digest(message)
    if message.kind == "report":
        return _render_report(message)
    resolved = message.kind in ("alert_resolved", "alert_settled")
    mark = ":white_check_mark:" if resolved else SEVERITY_MARK.get(message.severity, "")
    # A resolved message says so once, in its headline; the others carry their severity.
    label = None if resolved else message.severity.upper()
    # A settled estimate's headline says how it was settled already (alert_settled).
    headline = f"Resolved: {message.headline}" if message.kind == "alert_resolved" else message.headline
    marked = f"{mark} *{label}* · `{message.alert_id}`" if label else f"{mark} `{message.alert_id}`"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": headline[:150], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": marked
                                     + (f"\n{message.status}" if message.status else "")}},
    ]
    if message.facts:
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*{label_}*\n{value}"[:2000]} for label_, value in message.facts[:10]
        ]})
    if message.playbook_title and not resolved:
        steps = "\n".join(f"{i}. {step}" for i, step in enumerate(message.steps, 1))
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": f"*Playbook: {message.playbook_title}*\n{steps}".rstrip()}})
    if message.command and not resolved:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Run*\n```{message.command}```"}})
    if message.look and not resolved:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*First look*\n```{message.look}```"}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _context(message)}]})
    text = f"{label}: {headline}" if label else headline
    if message.owner and message.kind == "alert_opened":
        text = f"{message.owner} {text}"
    return {"text": text, "blocks": blocks}


def render_thread_reply(message: Message) -> dict[str, Any]:
    """The short reply under an alert's message when it escalates or resolves, so followers hear of it.

    An escalation is also shown in the channel and mentions the owner: it asks for more than before.
    """
    if message.kind == "alert_escalated":
        owner = f"{message.owner} " if message.owner else ""
        return {"text": f"{owner}{SEVERITY_MARK.get(message.severity, '')} {message.status}, because: "
                        f"{message.headline}", "reply_broadcast": True}
    if message.kind == "alert_settled" and message.status.startswith("Confirmed"):
        return {"text": f"{SEVERITY_MARK.get(message.severity, '')} {message.status}"}
    return {"text": f":white_check_mark: {message.status}"}


def _context(message: Message) -> str:
    parts = [f"mlwatch · night of {message.run_date.isoformat()}"]
    if message.link and message.kind != "report":
        parts.append(f"<{message.link}|the day's report>")
    if message.owner:
        parts.insert(0, f"Owner: {message.owner}")
    return " · ".join(parts)


def _render_digest(message: Message) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": message.headline, "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": message.status or "Nothing to report."}},
    ]
    for title, detail in message.items[:45]:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"• *{title}*\n{detail}"[:3000]}})
    if len(message.items) > 45:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"and {len(message.items) - 45} more: `mlwatch alerts`"}]})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _context(message)}]})
    return {"text": f"{message.headline}: {message.status}", "blocks": blocks}


def _render_report(message: Message) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": message.headline, "emoji": True}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{label}*\n{value}"} for label, value in message.facts]},
    ]
    if message.status:
        blocks.insert(1, {"type": "section", "text": {"type": "mrkdwn", "text": message.status}})
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"<{message.link}|Open the daily report>"}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _context(message)}]})
    facts = ", ".join(f"{label}: {value}" for label, value in message.facts[:3])
    return {"text": f"{message.headline}: {facts}. {message.link}", "blocks": blocks}
