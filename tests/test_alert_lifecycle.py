"""The alert lifecycle night by night: a noisy performance test does not flap, an SLO breach
resolves the night it clears, and a rerun changes nothing."""

import datetime as dt
from dataclasses import replace

import duckdb

from mlwatch.alerts import lifecycle
from mlwatch.alerts.candidate import Candidate
from mlwatch.ingest import ensure_tables
from mlwatch.warehouse import connect_writer
from tests.helpers import toy_config

FIRST = dt.date(2026, 3, 12)
DROP = Candidate(kind="performance_drop", model_name="toy", dedupe_key="performance_drop|toy|roc_auc|3d",
                 severity="warning", title="toy: roc_auc dropped", run_date=FIRST, metric="roc_auc")
COVERAGE = Candidate(kind="coverage_drop", model_name="toy", dedupe_key="coverage_drop|toy|amount",
                     severity="critical", title="toy: amount coverage dropped", run_date=FIRST)


def replay(config, nights: dict[int, list[Candidate]], last: int,
           without_data: set[int] = frozenset()) -> list[lifecycle.LifecycleResult]:
    """Apply the candidates of night FIRST + i for i in 0..last (nights missing from `nights` are clear).

    Every night but those in `without_data` has the marts' evidence to judge the alerts: a
    labeled performance window and SLO figures (alerts/evidence.py reads them).
    """
    results = []
    with connect_writer(config.warehouse) as con:
        ensure_tables(con, config)
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        con.execute("CREATE TABLE IF NOT EXISTS marts.performance (model_name VARCHAR, window_end DATE, "
                    "window_days INTEGER, metric VARCHAR, model_version VARCHAR, segment VARCHAR, "
                    "segment_value VARCHAR, n_labeled BIGINT)")
        con.execute("CREATE TABLE IF NOT EXISTS marts.slo_status (model_name VARCHAR, day DATE, slo VARCHAR, "
                    "met BOOLEAN)")
        for i in range(last + 1):
            night = FIRST + dt.timedelta(days=i)
            if i not in without_data:
                con.execute("INSERT INTO marts.performance VALUES ('toy', ?, 3, 'roc_auc', '__all__', '__all__', "
                            "'__all__', 800)", [night])
                con.execute("INSERT INTO marts.slo_status VALUES ('toy', ?, 'min_feature_coverage', ?)",
                            [night, not any(c.kind == "coverage_drop" for c in nights.get(i, []))])
            found = [replace(c, run_date=night) for c in nights.get(i, [])]
            results.append(lifecycle.apply(con, config, night, found))
    return results


def alerts(config) -> list[tuple]:
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        return con.execute("SELECT kind, status, first_seen, last_seen, resolved_on FROM marts.alerts "
                           "ORDER BY kind, first_seen").fetchall()


def day(i: int) -> dt.date:
    return FIRST + dt.timedelta(days=i)


def test_a_performance_alert_that_dips_under_its_test_for_a_night_or_two_stays_one_alert(tmp_path):
    config = toy_config(tmp_path)
    assert config.models["toy"].slos.performance.resolve_after_days == 3
    # Holds on nights 0, 1, 3, 5 and 6 (clear on 2 and 4), then clear from night 7 on.
    results = replay(config, {i: [DROP] for i in (0, 1, 3, 5, 6)}, last=9)
    assert alerts(config) == [("performance_drop", "resolved", day(0), day(6), day(9))]
    assert [len(r.opened) for r in results] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert [len(r.resolved) for r in results] == [0] * 9 + [1]


def test_a_drop_back_after_it_resolved_is_a_new_alert(tmp_path):
    config = toy_config(tmp_path)
    replay(config, {0: [DROP], 4: [DROP]}, last=4)
    assert alerts(config) == [("performance_drop", "resolved", day(0), day(0), day(3)),
                              ("performance_drop", "open", day(4), day(4), None)]


def test_an_slo_breach_resolves_the_first_clear_night(tmp_path):
    config = toy_config(tmp_path)
    replay(config, {0: [COVERAGE, DROP], 1: [COVERAGE]}, last=2)
    assert alerts(config) == [("coverage_drop", "resolved", day(0), day(1), day(2)),
                              ("performance_drop", "open", day(0), day(0), None)]


def test_the_grace_period_is_configurable(tmp_path):
    def one_night(data):
        data["models"]["toy"]["slos"]["performance"]["resolve_after_days"] = 1

    config = toy_config(tmp_path, edit=one_night)
    replay(config, {0: [DROP], 2: [DROP]}, last=2)
    assert [a[1:] for a in alerts(config)] == [("resolved", day(0), day(0), day(1)), ("open", day(2), day(2), None)]


def test_a_night_without_data_resolves_nothing_and_is_not_a_clear_night(tmp_path):
    config = toy_config(tmp_path)
    # Both conditions clear on night 1, but nights 1 and 2 had no data: nothing to judge them on.
    results = replay(config, {0: [DROP, COVERAGE]}, last=4, without_data={1, 2})
    assert [sorted(r.unjudged) != [] for r in results] == [False, True, True, False, False]
    assert [len(r.resolved) for r in results] == [0, 0, 0, 1, 0]      # coverage: the first night with data
    assert alerts(config) == [("coverage_drop", "resolved", day(0), day(0), day(3)),
                              ("performance_drop", "open", day(0), day(0), None)]   # 2 clear nights of 3
    results = replay(config, {0: [DROP, COVERAGE]}, last=5, without_data={1, 2})
    assert alerts(config)[1] == ("performance_drop", "resolved", day(0), day(0), day(5))
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        reason = con.execute("SELECT unjudged_reason FROM marts.alerts WHERE kind = 'performance_drop'").fetchone()[0]
    assert reason == f"0 labeled predictions in the window ending {day(2)}, 100 needed to judge it"


def test_a_rerun_of_the_night_changes_nothing(tmp_path):
    config = toy_config(tmp_path)
    replay(config, {0: [DROP, COVERAGE]}, last=3)
    before = alerts(config)
    with connect_writer(config.warehouse) as con:
        again = lifecycle.apply(con, config, day(3), [])
    assert alerts(config) == before
    assert (again.opened, again.resolved) == ([], [])


def test_digest_items_are_counted_apart_from_on_call_alerts(tmp_path):
    drift = Candidate(kind="drift", model_name="toy", dedupe_key="drift|toy|amount", severity="info",
                      title="toy: amount drifted, no measured effect", run_date=FIRST)
    def drift_to_digest(data):
        data["models"]["toy"]["playbooks"]["drift"] = "digest"
    config = toy_config(tmp_path, edit=drift_to_digest)
    first, second = replay(config, {0: [DROP, drift], 1: [DROP, drift]}, last=1)
    assert (len(first.opened), len(first.digest)) == (1, 1)
    assert (first.updated, len(second.updated), len(second.digest)) == ([], 1, 1)


def test_every_kind_the_rules_raise_has_a_default_playbook_and_the_message_says_it_is_the_default(tmp_path):
    import re
    from pathlib import Path

    from mlwatch.alerts import messages, playbooks, rules, volume
    from mlwatch.config import PLAYBOOK_DIGEST

    sources = Path(rules.__file__).read_text() + Path(volume.__file__).read_text()
    raised = set(re.findall(r'kind="(\w+)"', sources)) | rules.DRIFT_KINDS
    assert raised <= set(playbooks.DEFAULT_FOR_KIND)
    # a configuration may map a kind to a built-in playbook by its name
    mapped = toy_config(tmp_path, edit=lambda d: d["models"]["toy"]["playbooks"].update(
        {kind: name for kind, name in zip(sorted(raised), sorted(playbooks.BUILT_IN))}))
    assert set(mapped.models["toy"].playbooks.values()) >= set(playbooks.BUILT_IN)
    assert {playbooks.DEFAULT_FOR_KIND[k] for k in raised} <= set(playbooks.BUILT_IN) | {PLAYBOOK_DIGEST}

    config = toy_config(tmp_path)                  # maps performance_drop only
    for kind in raised - {"drift", "performance_drop"}:
        name, default = playbooks.chosen(config, ["toy"], kind)
        assert default and playbooks.lookup(config, name) is not None, kind
    assert playbooks.chosen(config, ["toy"], "drift") == (PLAYBOOK_DIGEST, True)   # never pages
    assert playbooks.chosen(config, ["toy"], "performance_drop") == ("retrain", False)
    alert = {"alert_id": "mlw-1", "kind": "drift_with_impact", "model_name": "toy", "playbook": "mlwatch_review",
             "title": "t", "severity": "warning", "first_seen": dt.date(2026, 3, 1), "evidence": "{}"}
    said = messages.alert_opened(alert, config)
    assert said.playbook_title.endswith("(mlwatch's default)")
    assert said.steps[-1] == ("This is mlwatch's default playbook for drift_with_impact: to choose your own, map "
                              "drift_with_impact under models.toy.playbooks in mlwatch.yml")
