"""Loading the landing zone: every row accepted or quarantined with its reason, reruns replace."""

import datetime as dt
import gzip
import shutil

import pandas as pd
import pytest

from mlwatch.ingest import ingest
from mlwatch.warehouse import connect_writer
from tests.helpers import fingerprint, toy_config, write_partition, write_toy_day

DAY = dt.date(2026, 3, 2)


@pytest.fixture
def toy(tmp_path):
    config = toy_config(tmp_path)
    write_toy_day(config.landing, DAY - dt.timedelta(days=1), n=50)
    write_toy_day(config.landing, DAY, n=50)
    return config


def load(config, day=DAY, **kwargs):
    with connect_writer(config.warehouse) as con:
        return ingest(con, config, day, **kwargs)


def query(config, sql):
    with connect_writer(config.warehouse) as con:
        return con.execute(sql).fetchall()


def predictions_frame(day, n=5, prefix="p"):
    at = pd.Timestamp(day) + pd.Timedelta(hours=10)
    return pd.DataFrame({
        "prediction_id": [f"{prefix}{i}" for i in range(n)],
        "model_name": "toy", "model_version": "v1",
        "event_at": [at - pd.Timedelta(seconds=3)] * n, "predicted_at": [at] * n,
        "score": [0.1 * (i + 1) for i in range(n)],
    })


def test_every_format_loads_and_a_rerun_replaces(toy):
    results = load(toy)
    assert {(r.feed, r.day, r.status) for r in results} >= {("predictions", DAY, "loaded"), ("labels", DAY, "loaded")}
    assert query(toy, "SELECT count(*) FROM raw.predictions") == [(100,)]
    before = fingerprint(toy.warehouse)
    rerun = load(toy)
    # The night's own partitions are read again; older unchanged ones are not.
    assert {(r.feed, r.day) for r in rerun} == {("predictions", DAY), ("labels", DAY)}
    assert fingerprint(toy.warehouse) == before


def test_changed_older_partition_is_read_again(toy):
    load(toy)
    older = DAY - dt.timedelta(days=1)
    write_partition(toy.landing, "predictions", older, predictions_frame(older, prefix="late"), "late.parquet")
    results = load(toy)
    assert ("predictions", older) in {(r.feed, r.day) for r in results}
    assert query(toy, "SELECT count(*) FROM raw.predictions") == [(105,)]


def test_bad_rows_are_quarantined_with_their_rule_and_nothing_is_lost(toy):
    rows = ("prediction_id,model_name,model_version,event_at,predicted_at,score\n"
            f"ok1,toy,v1,{DAY} 10:00:00,{DAY} 10:00:05,0.4\n"
            f",toy,v1,{DAY} 10:00:00,{DAY} 10:00:05,0.4\n"                         # no id
            f"bad_score,toy,v1,{DAY} 10:00:00,{DAY} 10:00:05,abc\n"                 # not a number
            f"nan_score,toy,v1,{DAY} 10:00:00,{DAY} 10:00:05,NaN\n"                 # not finite
            f"wrong_day,toy,v1,{DAY} 10:00:00,{DAY + dt.timedelta(days=1)} 00:00:05,0.4\n"
            f"ok1,toy,v1,{DAY} 10:00:00,{DAY} 10:00:05,0.4\n"                       # duplicate
            "only,three,fields\n")                                                  # malformed
    folder = toy.landing / "predictions" / f"dt={DAY}"
    (folder / "extra.csv").write_text(rows)
    [result] = [r for r in load(toy) if r.feed == "predictions" and r.day == DAY]
    extra = next(f for f in result.files if f.file.endswith("extra.csv"))
    assert (extra.rows_read, extra.rows_accepted, extra.rows_quarantined) == (7, 1, 6)
    quarantined = dict(query(toy, "SELECT CASE WHEN _line IS NULL THEN coalesce(json_extract_string(record, "
                                  "'$.prediction_id'), '') ELSE CAST(_line AS VARCHAR) END, "
                                  "array_to_string(rules, ',') || ' | ' || reasons FROM quarantine.predictions"))
    assert quarantined[""].startswith("required:prediction_id")
    assert "type:score" in quarantined["bad_score"] and "score: abc is not a double" in quarantined["bad_score"]
    assert "finite:score" in quarantined["nan_score"]
    assert "partition:predicted_at" in quarantined["wrong_day"]
    assert "is not the partition date 2026-03-02" in quarantined["wrong_day"]
    assert "duplicate:model_name/prediction_id" in quarantined["ok1"]
    assert "duplicate of row 1 in predictions/dt=2026-03-02/extra.csv" in quarantined["ok1"]
    assert "malformed:csv" in quarantined["8"]  # line 8 of the file
    # Conservation, per file, as recorded for the night.
    assert query(toy, "SELECT count(*) FROM ops.ingest_files WHERE rows_read <> rows_accepted + rows_quarantined") == [(0,)]
    assert query(toy, "SELECT count(*) FROM raw.predictions WHERE prediction_id = 'ok1'") == [(1,)]


def test_malformed_json_lines_are_quarantined(toy):
    folder = toy.landing / "labels" / f"dt={DAY}"
    (folder / "more.jsonl").write_text(
        '{"prediction_id": "toy-20260301-1", "model_name": "toy", "label": "1", "labeled_at": "2026-03-02T01:00:00"}\n'
        '{"prediction_id": "x", "model_name": "toy", "label": \n'
        '\n'
        '["not an object"]\n')
    [result] = [r for r in load(toy) if r.feed == "labels" and r.day == DAY]
    more = next(f for f in result.files if f.file.endswith("more.jsonl"))
    assert (more.rows_read, more.rows_accepted, more.rows_quarantined) == (3, 1, 2)
    lines = query(toy, "SELECT _line, rules FROM quarantine.labels ORDER BY _line")
    assert lines == [(2, ["malformed:json"]), (4, ["malformed:json"])]


_CSV = "prediction_id,model_name,model_version,event_at,predicted_at,score\n" + "".join(
    f"id{i},toy,v1,2026-03-02 10:00:00,2026-03-02 10:00:01,0.5\n" for i in range(5000))
TRUNCATED_GZIP = gzip.compress(_CSV.encode())[:4000]


@pytest.mark.parametrize("name, content, message", [
    ("empty.csv", b"", "empty file (rule: non_empty)"),
    ("header.csv", b"id,model,score\n1,toy,0.3\n", "column prediction_id is missing (rule: required column"),
    ("broken.parquet", b"PAR1 this is not parquet", "cannot be read (rule: readable)"),
    ("cut.csv.gz", TRUNCATED_GZIP, "Unexpected end of GZIP stream"),
    ("utf16.csv", "prediction_id,model_name,model_version,event_at,predicted_at,score\n"
                   "caf\xe9,toy,v1,2026-03-02 10:00:00,2026-03-02 10:00:01,0.5\n".encode("utf-16"),
     "not UTF-8 text, looks like UTF-16 (rule: encoding utf-8)"),
    ("latin1.csv", "prediction_id,model_name,model_version,event_at,predicted_at,score\n"
                   "caf\xe9,toy,v1,2026-03-02 10:00:00,2026-03-02 10:00:01,0.5\n".encode("latin-1"),
     "not UTF-8 text, byte 0xe9 at offset 70 (rule: encoding utf-8)"),
    ("scores.csv", b"prediction_id,model_name,model_version,event_at,predicted_at,score\n"
                   b"a,toy,v1,2026-03-02 10:00:00,2026-03-02 10:00:01,high\n"
                   b"b,toy,v1,2026-03-02 10:00:00,2026-03-02 10:00:01,low\n",
     "column score has the wrong type throughout (rule: type double)"),
    ("notes.txt", b"hello", "unsupported file type (rule: format)"),
])
def test_a_bad_file_fails_only_its_partition(toy, name, content, message):
    load(toy)  # a good first load of the partition
    before = query(toy, "SELECT count(*) FROM raw.predictions")
    (toy.landing / "predictions" / f"dt={DAY}" / name).write_bytes(content)
    results = load(toy)
    failed = [r for r in results if r.status == "failed"]
    assert [(r.feed, r.day) for r in failed] == [("predictions", DAY)]
    assert str(toy.landing / "predictions" / f"dt={DAY}" / name) in failed[0].error
    assert message in failed[0].error
    # The other feed of the night loaded; the partition kept its earlier good load.
    assert any(r.feed == "labels" and r.status == "loaded" for r in results)
    assert query(toy, "SELECT count(*) FROM raw.predictions") == before
    assert query(toy, f"SELECT status, error IS NOT NULL FROM ops.ingest_partitions "
                      f"WHERE feed = 'predictions' AND partition_date = DATE '{DAY}' ORDER BY status") \
        == [("failed", True), ("loaded", False)]  # the failure, beside the load that stays


def test_same_file_landed_twice_never_double_counts(toy):
    folder = toy.landing / "predictions" / f"dt={DAY}"
    shutil.copy(folder / "toy.parquet", folder / "toy_copy.parquet")
    load(toy)
    assert query(toy, f"SELECT count(*) FROM raw.predictions WHERE _partition_date = DATE '{DAY}'") == [(50,)]
    assert query(toy, "SELECT count(*), min(_source_file) FROM quarantine.predictions") \
        == [(50, f"predictions/dt={DAY}/toy_copy.parquet")]


def test_prediction_delivered_again_in_a_later_partition_is_a_duplicate(toy):
    load(toy)
    later = DAY + dt.timedelta(days=1)
    frame = predictions_frame(later, n=2)
    frame.loc[0, "prediction_id"] = f"toy-{DAY:%Y%m%d}-0"  # already delivered on DAY
    write_partition(toy.landing, "predictions", later, frame, "again.parquet")
    load(toy, later)
    rules = query(toy, "SELECT rules, reasons FROM quarantine.predictions")
    assert rules == [(["duplicate:model_name/prediction_id"], f"prediction_id: already delivered in partition dt={DAY}")]


def test_a_failed_partition_is_read_again_until_it_loads_and_its_failure_clears(toy):
    older = DAY - dt.timedelta(days=1)
    load(toy)
    bad = toy.landing / "predictions" / f"dt={older}" / "bad.csv"
    bad.write_bytes(b"id,model,score\n1,toy,0.3\n")
    assert [(r.feed, r.day) for r in load(toy) if r.status == "failed"] == [("predictions", older)]
    bad.unlink()          # the fix puts back the files of the last good load: the same fingerprint
    results = load(toy)
    assert ("predictions", older, "loaded") in {(r.feed, r.day, r.status) for r in results}
    assert query(toy, "SELECT count(*) FROM ops.ingest_partitions WHERE status = 'failed'") == [(0,)]
    # and, loaded, it is left alone again
    assert ("predictions", older) not in {(r.feed, r.day) for r in load(toy)}


# --- telling the whole truth about what arrived ------------------------------------------------

PREDICTION_HEADER = "prediction_id,model_name,model_version,event_at,predicted_at,score"


def _row(i, extra=""):
    return f"x{i},toy,v1,{DAY} 10:00:00,{DAY} 10:00:05,0.4{extra}"


def test_a_nul_byte_quarantines_its_row_and_names_where_it_is(toy):
    folder = toy.landing / "predictions" / f"dt={DAY}"
    text = "\n".join([PREDICTION_HEADER, _row(1), _row(2).replace("x2", "x\x002"), _row(3)]) + "\n"
    (folder / "nul.csv").write_bytes(text.encode())
    [result] = [r for r in load(toy) if r.feed == "predictions" and r.day == DAY]
    assert result.status == "loaded"                          # a stray NUL is not a UTF-16 file
    nul = next(f for f in result.files if f.file.endswith("nul.csv"))
    assert (nul.rows_read, nul.rows_accepted, nul.rows_quarantined) == (3, 2, 1)
    assert query(toy, "SELECT rules, reasons FROM quarantine.predictions") == [
        (["nul_byte:prediction_id"], "prediction_id: a NUL byte (0x00) at character 2 of the value, data row 2")]


def test_a_nul_byte_in_json_lines_names_the_line(toy):
    folder = toy.landing / "labels" / f"dt={DAY}"
    (folder / "nul.jsonl").write_text(
        '{"prediction_id": "toy-20260301-1", "model_name": "toy", "label": "1", "labeled_at": "2026-03-02T01:00:00"}\n'
        '{"prediction_id": "toy-20260301-2", "model_name": "toy", "label": "1\\u0000", "labeled_at": "2026-03-02T01:00:00"}\n')
    load(toy)
    assert query(toy, "SELECT _line, reasons FROM quarantine.labels") == [
        (2, "label: a NUL byte (0x00) at character 2 of the value, line 2")]


def test_a_column_nobody_named_is_reported_not_dropped_silently(toy, tmp_path):
    folder = toy.landing / "predictions" / f"dt={DAY}"
    (folder / "extra.csv").write_text("\n".join([PREDICTION_HEADER + ",debug_blob", _row(1, ",a"), _row(2, ",b")]) + "\n")
    load(toy)
    assert query(toy, "SELECT model_name, rule, n_rows, example FROM ops.contract_warnings") == [(
        "toy", "unknown_column:debug_blob", 2,
        f"predictions/dt={DAY}/extra.csv: column debug_blob is not in the contract nor a configured feature, segment "
        "or weight column; its values are not loaded (kept only in quarantined rows' records)")]


def test_a_huge_value_is_shortened_in_messages_with_its_length(tmp_path):
    def edit(data):
        data["models"]["toy"]["features"] = {"channel": {"type": "categorical", "values": ["web", "app"]}}
    config = toy_config(tmp_path, edit=edit)
    huge = "z" * 1_000_000
    frame = predictions_frame(DAY, n=2).assign(channel=["web", huge])
    write_partition(config.landing, "predictions", DAY, frame, "p.parquet")
    load(config)
    [(example,)] = query(config, "SELECT example FROM ops.contract_warnings WHERE rule = 'in_set:channel'")
    assert example.startswith("channel: 'zzzz") and example.endswith("… (1,000,002 characters) is not one of web, app")
    assert len(example) < 200
    assert query(config, "SELECT length(channel) FROM raw.predictions ORDER BY 1 DESC LIMIT 1") == [(1_000_000,)]


def test_labels_that_cannot_join_a_prediction_are_counted_by_reason(toy):
    load(toy, DAY - dt.timedelta(days=1))
    folder = toy.landing / "labels" / f"dt={DAY}"
    (folder / "orphans.csv").write_text(
        "prediction_id,model_name,label,labeled_at\n"
        f"never-predicted-1,toy,1,{DAY} 09:00:00\n"
        f"never-predicted-2,toy,0,{DAY} 09:00:00\n"
        f"toy-{DAY - dt.timedelta(days=1):%Y%m%d}-3,toy,1,{DAY} 09:00:00\n"      # its prediction is there
        f"a-1,unconfigured_model,1,{DAY} 09:00:00\n")
    [labels] = [r for r in load(toy) if r.feed == "labels" and r.day == DAY]
    assert labels.rows_quarantined == 0                     # accepted: a prediction may still come
    assert query(toy, "SELECT model_name, reason, n_labels, example_prediction_id FROM ops.label_orphans "
                      "ORDER BY reason") == [("toy", "no_prediction", 2, "never-predicted-1"),
                                             ("unconfigured_model", "unknown_model", 1, "a-1")]
    # conservation still holds: orphans are accepted rows, counted apart
    assert query(toy, "SELECT sum(rows_read) = sum(rows_accepted) + sum(rows_quarantined) FROM ops.ingest_files") \
        == [(True,)]
