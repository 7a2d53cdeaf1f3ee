"""The data contract (Great Expectations): every bad row quarantined with its rule and
reason, the rest accepted, nothing lost, memory bounded; and the demo's dirt, exactly."""

import datetime as dt
import json

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlwatch import nightly, validation
from mlwatch.demo import incidents as inc
from mlwatch.ingest import ingest
from mlwatch.warehouse import connect_writer
from tests.conftest import SMALL_DEMO
from tests.helpers import toy_config, write_partition

DAY = dt.date(2026, 3, 2)


def load(config, day=DAY):
    with connect_writer(config.warehouse) as con:
        return ingest(con, config, day)


def rows(config, sql):
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


def conserved(config):
    """rows read = accepted + quarantined, per file and per feed, against the tables themselves."""
    assert rows(config, "SELECT count(*) FROM ops.ingest_files "
                        "WHERE rows_read <> rows_accepted + rows_quarantined") == [(0,)]
    for feed in ("predictions", "labels", "costs", "stages"):
        read, accepted, quarantined = rows(config, f"SELECT coalesce(sum(rows_read), 0), coalesce(sum(rows_accepted), 0), "
                                                   f"coalesce(sum(rows_quarantined), 0) FROM ops.ingest_files WHERE feed = '{feed}'")[0]
        assert accepted == rows(config, f"SELECT count(*) FROM raw.{feed}")[0][0]
        assert quarantined == rows(config, f"SELECT count(*) FROM quarantine.{feed}")[0][0]
        assert read == accepted + quarantined


def prediction(pid, **changes):
    at = pd.Timestamp(DAY) + pd.Timedelta(hours=10)
    row = {"prediction_id": pid, "model_name": "toy", "model_version": "v1", "event_at": at - pd.Timedelta(seconds=3),
           "predicted_at": at, "score": 0.4, "latency_ms": 30.0, "cost_usd": 0.001}
    row.update(changes)
    return row


@pytest.fixture
def config(tmp_path):
    def edit(data):
        data["pipeline"] = ["ingest", "inference"]
        data["models"]["toy"]["features"] = {
            "amount": {"type": "numeric", "min": 0, "max": 1000, "default": -1},
            "channel": {"type": "categorical", "values": ["web", "app"], "default": "unknown"},
        }
        data["models"]["eta"] = {"task": "regression", "reference": {"start": "2026-03-01", "end": "2026-03-02"}}
    return toy_config(tmp_path, edit=edit)


AT = pd.Timestamp(DAY) + pd.Timedelta(hours=10)


@pytest.mark.parametrize("feed, row, rule, reason", [
    ("predictions", prediction("p", score=1.37), "range:score", "score: 1.37 is outside [0, 1]"),
    ("predictions", prediction(None), "required:prediction_id", "prediction_id: required value missing"),
    ("predictions", prediction("p", event_at=AT + pd.Timedelta(minutes=2)), "range:time_to_decision_s",
     "time_to_decision_s (predicted_at - event_at, seconds): -120.0 is outside [-5, 604800]"),
    ("predictions", prediction("p", event_at=AT - pd.Timedelta(days=9)), "range:time_to_decision_s",
     "time_to_decision_s (predicted_at - event_at, seconds): 777600.0 is outside [-5, 604800]"),
    ("predictions", prediction("p", latency_ms=-4.0), "range:latency_ms", "latency_ms: -4.0 is below 0"),
    ("predictions", prediction("p", model_version="__all__"), "reserved:model_version",
     "model_version: '__all__' is a name mlwatch reserves (marts.performance's row for all versions together)"),
    ("labels", {"prediction_id": "p", "model_name": "toy", "label": "2", "labeled_at": AT}, "in_set:label",
     "label: '2' is not one of 0, 1"),
    ("labels", {"prediction_id": "p", "model_name": "eta", "label": "soon", "labeled_at": AT}, "number:label",
     "label: 'soon' is not a number"),
    ("labels", {"prediction_id": "p", "model_name": "toy", "label": "1", "labeled_at": AT, "weight": -3.0},
     "range:weight", "weight: -3.0 is below 0"),
    ("costs", {"model_name": "toy", "component": "gpu", "cost_usd": -1.0}, "range:cost_usd", "cost_usd: -1.0 is below 0"),
    ("stages", {"stage": "feature_tier9", "window_start": AT, "window_seconds": 300, "records_out": 5,
                "busy_seconds": 10.0, "workers": 1}, "in_set:stage", "stage: 'feature_tier9' is not one of ingest, inference"),
    ("stages", {"stage": "ingest", "window_start": AT, "window_seconds": 300, "records_out": 5,
                "busy_seconds": 900.0, "workers": 2}, "range:utilization",
     "utilization (busy_seconds / (window_seconds x workers)): 1.5 is outside [0, 1.05]"),
])
def test_each_bad_row_is_quarantined_with_its_rule_and_the_rest_goes_on(config, feed, row, rule, reason):
    good = {"predictions": prediction("good"),
            "labels": {"prediction_id": "good", "model_name": "toy", "label": "1", "labeled_at": AT},
            "costs": {"model_name": "toy", "component": "compute", "cost_usd": 2.0},
            "stages": {"stage": "inference", "window_start": AT, "window_seconds": 300, "records_out": 5,
                       "busy_seconds": 10.0, "workers": 1}}[feed]
    write_partition(config.landing, feed, DAY, pd.DataFrame([good, row]), f"{feed}.parquet")
    [result] = load(config)
    assert (result.rows_read, result.rows_accepted, result.rows_quarantined) == (2, 1, 1)
    [(rules, reasons, record)] = rows(config, f"SELECT rules, reasons, record FROM quarantine.{feed}")
    assert rules == [rule] and reasons == reason
    assert json.loads(record)  # the original row, kept
    conserved(config)


def test_feature_values_outside_the_contract_are_kept_as_warnings(config):
    frame = pd.DataFrame([prediction("a", amount=5.0, channel="web"), prediction("b", amount=5000.0, channel="fax"),
                          prediction("c", amount=-1.0, channel="unknown"), prediction("d", amount=-20.0, channel="app")])
    write_partition(config.landing, "predictions", DAY, frame, "p.parquet")
    [result] = load(config)
    assert result.rows_accepted == 4 and result.rows_quarantined == 0
    warnings = rows(config, "SELECT rule, n_rows, example FROM ops.contract_warnings ORDER BY rule")
    # The defaults (-1, 'unknown') are the pipeline's fallback, not contract breaches.
    assert warnings == [("in_set:channel", 1, "channel: 'fax' is not one of web, app"),
                        ("range:amount", 2, "amount: 5000.0 is outside [0, 1000]")]


def test_the_sql_contract_finds_exactly_what_great_expectations_finds(config, monkeypatch):
    """Nightly, the contract runs as SQL; Great Expectations itself, on the same rows, must agree on every
    row, rule and reason: boundaries, exempt defaults, missing values, unknown models, every feed."""
    edge = [prediction(f"p{i}", score=s) for i, s in enumerate([0.0, 1.0, -0.0001, 1.0001, 0.5])]
    edge += [prediction("f1", amount=0.0, channel="app"), prediction("f2", amount=1000.0001, channel="fax"),
             prediction("f3", amount=-1.0, channel="unknown"), prediction("f4", amount=None, channel=None),
             prediction("f5", amount=-1.5, channel="Web"), prediction("f6", channel="x" * 500),
             prediction("t1", event_at=AT + pd.Timedelta(seconds=5)), prediction("t2", event_at=AT + pd.Timedelta(seconds=5.001)),
             prediction("v1", model_version="__all__"), prediction("v2", model_version="__ALL__"),
             prediction("l1", latency_ms=0.0, cost_usd=-0.0), prediction("l2", latency_ms=-1e-9),
             prediction("m1", model_name="not_configured", score=7.0), prediction("m2", model_name="eta", score=-42.0)]
    edge += [prediction(f"bulk{i}", score=(1.5 if i % 7 == 0 else 0.3)) for i in range(2500)]
    write_partition(config.landing, "predictions", DAY, pd.DataFrame(edge), "predictions.parquet")
    label = {"prediction_id": "p", "model_name": "toy", "labeled_at": AT}
    labels = [dict(label, label=v) for v in ("0", "1", "2", "1.0", " 1", "true")]
    labels += [dict(label, model_name="eta", label=v) for v in ("3.5", "-2", "1e3", ".5", "5.", "soon", "1,5", " 7 ", "")]
    labels += [dict(label, label="1", weight=w) for w in (0.0, -0.0001, 12.5)]
    labels += [dict(label, model_name="ghost", label="anything")]
    labels = [dict(l, prediction_id=f"x{i}") for i, l in enumerate(labels)]
    write_partition(config.landing, "labels", DAY, pd.DataFrame(labels), "labels.parquet")
    write_partition(config.landing, "costs", DAY, pd.DataFrame([
        {"model_name": "toy", "component": "gpu", "cost_usd": c} for c in (0.0, -0.01, 3.0)]), "costs.parquet")
    stage = {"window_start": AT, "window_seconds": 300, "records_out": 5, "busy_seconds": 10.0, "workers": 1}
    write_partition(config.landing, "stages", DAY, pd.DataFrame([
        dict(stage, stage="ingest"), dict(stage, stage="inference", busy_seconds=315.0),
        dict(stage, stage="inference", busy_seconds=315.1), dict(stage, stage="nope", workers=0),
        dict(stage, stage="ingest", window_seconds=0.5, queue_depth=-1)]), "stages.parquet")

    disagreements, batches, checked = [], [], {}
    apply, validate = validation.apply_contract, validation.ContractValidator.validate

    def compared(con, validator, feed):
        disagreements.extend(validation.cross_check(con, validator, feed))
        apply(con, validator, feed)
        checked[feed.name] = con.execute("SELECT count(*) FROM staged_rows WHERE len(_rules) > 0").fetchone()[0]

    def counted(self, feed, model, batch):
        batches.append(len(batch))
        return validate(self, feed, model, batch)

    monkeypatch.setattr(validation, "apply_contract", compared)
    monkeypatch.setattr(validation.ContractValidator, "validate", counted)
    small = config.model_copy(update={"contracts": config.contracts.model_copy(update={"batch_rows": 1000})})
    load(small)
    assert disagreements == []
    assert max(batches) <= 1000                                   # Great Expectations' memory stays bounded
    assert all(checked[feed] > 0 for feed in ("predictions", "labels", "costs", "stages")), checked
    assert rows(config, "SELECT count(*) FROM quarantine.predictions "
                        "WHERE json_extract_string(record, '$.prediction_id') LIKE 'bulk%'") == [(358,)]


# ------------------------------------------------------------------ property: nothing is ever lost

GOOD, BAD_SCORE, NO_ID, DUPLICATE, WRONG_DAY, MALFORMED = range(6)
KIND = st.sampled_from([GOOD, BAD_SCORE, NO_ID, DUPLICATE, WRONG_DAY, MALFORMED])


def _csv(kinds: list[int]) -> tuple[str, set[str], int]:
    """A predictions CSV from a list of row kinds; returns it, the ids that must be accepted, and the bad-row count."""
    lines = ["prediction_id,model_name,model_version,event_at,predicted_at,score"]
    accepted: set[str] = set()
    bad = 0
    stamp = f"{DAY} 10:00:00,{DAY} 10:00:02"
    for i, kind in enumerate(kinds):
        if kind == GOOD or (kind == DUPLICATE and not accepted):
            lines.append(f"id{i},toy,v1,{stamp},0.5")
            accepted.add(f"id{i}")
            continue
        bad += 1
        lines.append({
            BAD_SCORE: f"id{i},toy,v1,{stamp},-0.5",
            NO_ID: f",toy,v1,{stamp},0.5",
            DUPLICATE: f"{sorted(accepted)[0] if accepted else 'x'},toy,v1,{stamp},0.5",
            WRONG_DAY: f"id{i},toy,v1,{DAY} 10:00:00,{DAY + dt.timedelta(days=1)} 00:00:01,0.5",
            MALFORMED: f"id{i},toy",
        }[kind])
    return "\n".join(lines) + "\n", accepted, bad


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(KIND, min_size=1, max_size=40))
def test_any_mixture_of_good_and_bad_rows_is_conserved(tmp_path_factory, kinds):
    config = toy_config(tmp_path_factory.mktemp("mix"))
    text, accepted, bad = _csv(kinds)
    folder = config.landing / "predictions" / f"dt={DAY}"
    folder.mkdir(parents=True)
    (folder / "mix.csv").write_text(text)
    [result] = load(config)
    assert result.status == "loaded"
    assert (result.rows_read, result.rows_accepted, result.rows_quarantined) == (len(kinds), len(accepted), bad)
    assert {r[0] for r in rows(config, "SELECT prediction_id FROM raw.predictions")} == accepted
    conserved(config)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(KIND, min_size=5, max_size=40))
def test_the_marts_only_ever_see_accepted_rows(tmp_path_factory, kinds):
    config = toy_config(tmp_path_factory.mktemp("marts"))
    text, accepted, _ = _csv(kinds)
    folder = config.landing / "predictions" / f"dt={DAY}"
    folder.mkdir(parents=True)
    (folder / "mix.csv").write_text(text)
    nightly.run_night(config, DAY)
    counted = rows(config, "SELECT max(n_predictions) FROM marts.performance WHERE window_end = DATE '2026-03-02' "
                           "AND model_version = '__all__'")[0][0]
    assert (counted or 0) == len(accepted)
    assert rows(config, "SELECT sum(n_accepted), sum(n_rows) FROM marts.data_quality WHERE feed = 'predictions'")[0] \
        == (len(accepted), len(kinds))


# ------------------------------------------------------------------ the demo's dirty partitions


def test_demo_quarantine_holds_exactly_the_injected_dirt(demo_warehouse):
    found = {}
    for feed in ("predictions", "labels", "costs", "stages"):
        for day, rule, n in rows(demo_warehouse, f"SELECT _partition_date, rules[1], count(*) FROM quarantine.{feed} "
                                                 "GROUP BY ALL"):
            found.setdefault((feed, (day - SMALL_DEMO.start).days), {})[rule] = n
    assert found == inc.dirty_rows(SMALL_DEMO.fraud_per_day)
    [(offset, feature), count] = next(iter(inc.INVALID_FEATURE_VALUES.items()))
    day = SMALL_DEMO.day(offset)
    assert rows(demo_warehouse, f"SELECT n_rows FROM ops.contract_warnings WHERE rule = 'in_set:{feature}' "
                                f"AND partition_date = DATE '{day}'") == [(count,)]
    assert rows(demo_warehouse, f"SELECT n_invalid FROM marts.feature_coverage WHERE feature = '{feature}' "
                                f"AND day = DATE '{day}'") == [(count,)]
    breached = rows(demo_warehouse, "SELECT model_name, day FROM marts.slo_status WHERE slo = 'max_data_loss' AND NOT met")
    assert breached == [("card_fraud", inc.DIRTY_EXPORT.first_day())]
    conserved(demo_warehouse)


def test_data_loss_raises_a_data_loss_alert(demo_landing, tmp_path):
    from tests.helpers import write_config

    config = write_config(tmp_path, demo_landing)
    report = nightly.run_night(config, inc.DIRTY_EXPORT.first_day())
    [alert] = rows(config, "SELECT kind, playbook, status, title FROM marts.alerts")
    assert alert[:3] == ("data_loss", "data_incident", "open")
    assert "card_fraud" in alert[3] and "quarantined" in alert[3]
    assert len(report.delivery.kept_local) == 1
