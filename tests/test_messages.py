"""Every message shape, rendered to Slack Block Kit, pinned by golden files.

Set UPDATE_GOLDEN=1 to rewrite the files after an intended change, and review the diff.
"""

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from mlwatch.alerts import messages
from mlwatch.alerts.candidate import alert_id
from mlwatch.config import embedded_config_text, parse_config
from tests.helpers import run_alert_commands

GOLDEN = Path(__file__).parent / "golden"
NIGHT = dt.date(2026, 9, 12)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    # The embedded demo configuration, with the reports served where Slack links to them.
    text = embedded_config_text() + "\nreport:\n  url: https://airflow.example.com/mlwatch/reports\n"
    return parse_config(text, source="<embedded>", base_dir=tmp_path_factory.mktemp("cwd"))


def alert(kind, model, title, facts, *, severity="critical", playbook=None, version=None, segment=None,
          value=None, first_seen=NIGHT, last_seen=NIGHT, status="open", resolved_on=None, **evidence):
    key = f"{kind}|{model}|example"
    return {"alert_id": alert_id(key, first_seen), "dedupe_key": key, "model_name": model, "kind": kind,
            "severity": severity, "playbook": playbook, "title": title, "model_version": version,
            "segment": segment, "segment_value": None, "metric": None, "value": value, "window_days": 7,
            "reference_value": None, "ci_low": None, "ci_high": None, "since": first_seen - dt.timedelta(days=1),
            "first_seen": first_seen, "last_seen": last_seen, "resolved_on": resolved_on, "status": status,
            "evidence": json.dumps({"facts": facts, **evidence})}


ALERTS = {
    "performance_drop": alert(
        "performance_drop", "card_fraud", "card_fraud: roc_auc 0.7791 is 3.4% worse than its reference 0.8067",
        [["Model", "card_fraud"], ["How bad", "roc_auc 0.7791, 95% CI [0.7751, 0.7831] vs reference 0.8067 (7-day window)"],
         ["Change", "3.4% worse (tolerance 2.0%)"], ["Evidence", "188,640 labeled predictions, label coverage 89.8%"]],
        playbook="retrain"),
    "performance_drop_after_release": alert(
        "performance_drop_after_release", "card_fraud",
        "card_fraud 1.5.0 (serving since 2026-08-31): roc_auc 0.7712 is 4.4% worse than the reference 0.8067",
        [["Model", "card_fraud"], ["Version", "1.5.0, first served 2026-08-31, before it 1.4.0"],
         ["How bad", "roc_auc 0.7712, 95% CI [0.7650, 0.7774] vs reference 0.8067 (7-day window)"]],
        playbook="rollback", version="1.5.0", previous_version="1.4.0"),
    "segment_performance_drop": alert(
        "segment_performance_drop", "card_fraud",
        "card_fraud 1.5.0, country=BR: roc_auc 0.7228 is 9.4% worse than the segment's reference 0.7980",
        [["Model", "card_fraud"], ["Version", "1.5.0, serving since 2026-08-31 (before it 1.4.0)"],
         ["Segment", "country = BR"], ["Significance", "p = 3e-12 after Benjamini-Hochberg over 36 segment tests tonight"]],
        playbook="review", version="1.5.0", segment="country",
        command="mlwatch sql \"select window_end, model_version, value, ci_low, ci_high, reference_value, n_labeled "
                "from marts.performance where model_name = 'card_fraud' and segment = 'country' "
                "and segment_value = 'BR' and metric = 'roc_auc' and window_days = 7 "
                "order by window_end desc, model_version limit 28\"",
        act="mlwatch rollback --model card_fraud --to 1.4.0 --reason '{alert_id}'"),
    "coverage_drop": alert(
        "coverage_drop", "card_fraud", "card_fraud: critical feature account_age_days covers 65.5% of predictions (SLO 98.0%)",
        [["Model", "card_fraud"], ["Feature", "account_age_days"], ["Why", "0.0% missing, 34.5% are the default -1.0"]],
        playbook="data_incident",
        command="mlwatch sql \"select * from marts.feature_coverage where model_name = 'card_fraud' "
                "and feature = 'account_age_days' order by day desc limit 14\""),
    "drift_with_impact": alert(
        "drift_with_impact", "card_fraud", "card_fraud: __score__ drifted with impact on score",
        [["Model", "card_fraud"], ["Feature", "__score__"], ["Drift", "ks 0.31 (1d), psi 0.52 (1d)"],
         ["Impact", "the score moved with it (labels are not in yet)"]], severity="warning", playbook="review"),
    "cost_over_budget": alert(
        "cost_over_budget", "delivery_eta", "delivery_eta: cost per prediction $0.00368 is over its budget $0.00200",
        [["Model", "delivery_eta"], ["How bad", "$0.00368 per prediction (budget $0.00200, usual $0.00123)"],
         ["Breakdown", "gpu $45.01, compute $8.24, storage $1.46"]], playbook="right_size"),
    "time_to_decision_breach": alert(
        "time_to_decision_breach", "__pipeline__",
        "Time to decision over its SLO for card_fraud, delivery_eta at feature_tier2: p95 up to 16.4 min",
        [["card_fraud", "p95 16.4 min (SLO 5 min)"], ["delivery_eta", "p95 16.4 min (SLO 5 min)"],
         ["Constraint", "feature_tier2: utilization 100.6% in the busiest hour (56.2% over the day), "
                        "queue growth +536 over the day"]],
        playbook="constraint_review", models=["card_fraud", "delivery_eta"],
        command="mlwatch sql \"select stage, peak_utilization, utilization, headroom, p95_latency_ms, queue_depth, "
                "queue_growth, top_failure_mode, is_constraint from marts.constraint_ledger "
                "where day = DATE '2026-09-12' and source = 'telemetry' order by stage_order\""),
    "data_loss": alert(
        "data_loss", "card_fraud", "card_fraud: 0.14% of the input rows of 2026-09-12 were quarantined (SLO 0.10%)",
        [["Model", "card_fraud"], ["How bad", "0.14% of input rows quarantined (SLO 0.10%)"],
         ["predictions", "41 of 30,045 rows: duplicate:model_name/prediction_id (15), range:score (12)"]],
        playbook="data_incident"),
    "estimated_performance_drop": alert(
        "estimated_performance_drop", "card_fraud",
        "card_fraud: estimated roc_auc 0.7702 is 4.5% worse than its reference 0.8065 (estimated from scores, "
        "12.0% labeled so far)",
        [["Model", "card_fraud"], ["How bad", "estimated roc_auc 0.7702, 95% interval [0.7651, 0.7753] vs the "
                                              "reference's 0.8065 estimated the same way (realized 0.8067) (7-day window)"],
         ["Change", "4.5% worse (tolerance 2.0%)"],
         ["Evidence", "an estimate from the scores of 210,000 predictions, calibrated on the reference's labels; "
                      "12.0% of them labeled so far"],
         ["Labels", "when this window's labels are in (30 days), the realized figure confirms or withdraws this "
                    "alert in its thread"]], severity="critical", playbook="mlwatch_estimated_drop"),
    "labels_stopped": alert(
        "labels_stopped", "card_fraud", "card_fraud: labels stopped arriving: recent days are 2.0% labeled, 41.0% expected",
        [["Model", "card_fraud"], ["How bad", "5 days of predictions 2.0% labeled where the reference period was 41.0% "
                                                "at the same age"]], severity="warning", playbook="data_incident"),
}


def check(name: str, payload: dict) -> None:
    path = GOLDEN / f"{name}.json"
    text = json.dumps(payload, indent=1, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"no golden file {path.name}: run with UPDATE_GOLDEN=1 and review it"
    assert json.loads(path.read_text()) == payload, f"{path.name} changed; review, then UPDATE_GOLDEN=1"


@pytest.mark.parametrize("kind", sorted(ALERTS))
def test_every_alert_kind_renders_as_pinned(config, kind):
    message = messages.alert_opened(ALERTS[kind], config)
    payload = messages.render_slack(message)
    check(f"opened_{kind}", {"channel": message.channel, **payload})
    text = json.dumps(payload)
    assert ALERTS[kind]["title"][:60] in text and "Since" in text


def test_rollback_command_names_the_previous_version(config):
    message = messages.alert_opened(ALERTS["performance_drop_after_release"], config)
    assert message.command == f"mlwatch rollback --model card_fraud --to 1.4.0 --reason '{ALERTS['performance_drop_after_release']['alert_id']}'"


def test_pipeline_alerts_go_to_the_default_channel_and_models_to_theirs(config):
    assert messages.alert_opened(ALERTS["time_to_decision_breach"], config).channel == "#ml-alerts"
    assert messages.alert_opened(ALERTS["cost_over_budget"], config).channel == "#logistics-ml-alerts"
    assert messages.alert_opened(ALERTS["coverage_drop"], config).owner == "@payments-ml-oncall"
    # A pipeline alert names the owners of the models it affects.
    assert messages.alert_opened(ALERTS["time_to_decision_breach"], config).owner == "@payments-ml-oncall @logistics-ml"


def test_update_resolved_and_digest_render_as_pinned(config):
    held = dict(ALERTS["coverage_drop"], first_seen=NIGHT - dt.timedelta(days=2), last_seen=NIGHT)
    check("update", messages.render_slack(messages.alert_update(held, config)))
    resolved = dict(held, status="resolved", resolved_on=NIGHT + dt.timedelta(days=1))
    message = messages.alert_resolved(resolved, config)
    check("resolved", {**messages.render_slack(message), "thread_reply": messages.render_thread_reply(message)})
    assert "RESOLVED" not in json.dumps(messages.render_slack(message))      # said once: "Resolved: ..."
    escalated = dict(held, severity="critical", escalated_on=NIGHT, escalated_from="warning")
    message = messages.alert_escalated(escalated, config)
    check("escalated", {**messages.render_slack(message), "thread_reply": messages.render_thread_reply(message)})
    reply = messages.render_thread_reply(message)
    assert reply["reply_broadcast"] and reply["text"].startswith(message.owner)
    assert "warning → critical" in reply["text"]
    drift = alert("drift", "card_fraud", "card_fraud: session_length_s drifted (no measured impact)",
                  [["Model", "card_fraud"], ["Feature", "session_length_s"], ["Drift", "ks 0.26 (7d), wasserstein 0.81 (7d)"],
                   ["Impact", "no measured effect on the score or performance"]], severity="info", status="digest")
    quiet = dict(drift, first_seen=NIGHT - dt.timedelta(days=11), since=None,
                 evidence='{"feature": "merchant_category"}')
    digest = messages.digest("#payments-ml-alerts", NIGHT, [drift], [ALERTS["labels_stopped"]], budget=10,
                             unchanged=[quiet])
    check("digest", messages.render_slack(digest))
    for settlement, detail in (("confirmed", "the labels confirm it: card_fraud: roc_auc 0.7712 is 4.4% worse than its "
                                             "reference 0.8067 (opened 2026-09-19)"),
                               ("withdrawn", "the labels withdraw it: the realized roc_auc of the 7-day window ending "
                                             "2026-09-12 is 0.8031 against the reference 0.8067, within tolerance")):
        settled = dict(ALERTS["estimated_performance_drop"], status="resolved", resolved_on=NIGHT,
                       settled_on=NIGHT + dt.timedelta(days=30), settlement=settlement, settlement_detail=detail)
        message = messages.alert_settled(settled, config)
        check(f"settled_{settlement}", {**messages.render_slack(message),
                                        "thread_reply": messages.render_thread_reply(message)})
        said = json.dumps(messages.render_slack(message))
        assert f"{settlement.capitalize()} by labels: card_fraud: estimated roc_auc" in said and "RESOLVED" not in said
    assert "1 alert(s) over today's budget of 10" in digest.status
    assert "still drifting, unchanged: card_fraud merchant_category since 09-01 (12 nights)" in digest.status


def test_report_summary_renders_as_pinned():
    summary = {"day": "2026-09-25", "models": 2, "slos_judged": 12, "slos_missed": ["card_fraud: time_to_decision_p95_s"],
               "open_alerts": 1, "critical_alerts": 1, "digest_items": 1, "constraint": "feature_tier2"}
    message = messages.report_summary("#ml-alerts", NIGHT, summary, "https://airflow.example/mlwatch/reports/daily/x.html")
    payload = messages.render_slack(message)
    check("report", {"channel": message.channel, **payload})
    assert "<https://airflow.example/mlwatch/reports/daily/x.html|Open the daily report>" in json.dumps(payload)
    calm = messages.report_summary("#ml-alerts", NIGHT, {**summary, "slos_missed": [], "open_alerts": 0,
                                                         "critical_alerts": 0}, "file:///r.html")
    assert calm.status == "All SLOs met, nothing open." and calm.severity == "info"



def test_the_commands_of_the_demo_warehouses_alerts_run_on_it(demo_warehouse, tmp_path):
    """The alerts the small demo's last night opened, as their messages show them: the
    command to act and the first-look query run, pasted into a shell, on a copy of its
    warehouse (tests/test_demo_alerts.py does the same for every incident of the replay)."""
    import duckdb

    with duckdb.connect(str(demo_warehouse.warehouse), read_only=True) as con:
        cursor = con.execute("SELECT * FROM marts.alerts")
        alerts = [dict(zip([d[0] for d in cursor.description], row)) for row in cursor.fetchall()]
    ran = run_alert_commands(demo_warehouse, alerts, tmp_path)
    assert "time_to_decision_breach" in ran
