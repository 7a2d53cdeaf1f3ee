import textwrap
from pathlib import Path

import pytest

from mlwatch.config import embedded_config, load_config, parse_config
from mlwatch.errors import ConfigError
from tests.conftest import REPO


def test_without_a_configuration_file_mlwatch_refuses_to_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as refused:
        load_config()
    assert f"no mlwatch.yml in {tmp_path}" in str(refused.value) and "mlwatch demo" in str(refused.value)


def test_embedded_configuration_is_valid_and_complete(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = embedded_config()
    assert config.source == "<embedded>" and config.warehouse == tmp_path / "warehouse" / "mlwatch.duckdb"
    assert set(config.models) == {"card_fraud", "delivery_eta"}
    fraud = config.models["card_fraud"]
    assert fraud.task == "binary_classification"
    assert fraud.performance_metric == "roc_auc" and fraud.alert_window_days == 7
    assert fraud.features["account_age_days"].default == -1 and fraud.features["account_age_days"].critical
    assert config.channel_for("card_fraud") == "#payments-ml-alerts"
    assert config.models["delivery_eta"].performance_metric == "mae"
    assert config.pipeline == ["ingest", "feature_tier1", "feature_tier2", "inference", "alerting"]


def test_paths_are_relative_to_the_file_and_overridable(tmp_path, monkeypatch):
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "mlwatch.yml"
    path.write_text(textwrap.dedent("""
        landing: data/landing
        warehouse: wh/m.duckdb
        models:
          m: {task: regression, reference: {start: 2026-01-01, end: 2026-01-31}}
    """))
    config = load_config(path)
    assert config.landing == (tmp_path / "conf" / "data" / "landing").resolve()
    assert config.warehouse == (tmp_path / "conf" / "wh" / "m.duckdb").resolve()
    monkeypatch.setenv("MLWATCH_WAREHOUSE", str(tmp_path / "elsewhere.duckdb"))
    monkeypatch.setenv("MLWATCH_CONFIG", str(path))
    assert load_config().warehouse == tmp_path / "elsewhere.duckdb"


@pytest.mark.parametrize("text, expected", [
    ("models: {m: {task: binary, reference: {start: 2026-01-01, end: 2026-01-31}}}",
     ["models.m.task", "'binary'", "binary_classification"]),
    ("models: {m: {task: regression, windows: [0], reference: {start: 2026-01-01, end: 2026-01-31}}}",
     ["models.m.windows", "positive day counts"]),
    ("models: {m: {task: regression, reference: {start: 2026-02-01, end: 2026-01-31}}}",
     ["models.m.reference", "after end"]),
    ("modles: {}\nmodels: {m: {task: regression, reference: {start: 2026-01-01, end: 2026-01-31}}}",
     ["modles", "Extra inputs are not permitted"]),
    ("models: {m: {task: regression, reference: {start: 2026-01-01, end: 2026-01-31}, "
     "playbooks: {performance_drop: nope}}}",
     ["performance_drop", "'nope'", "not defined"]),
    ("models: {m: {task: regression, slos: {performance: {metric: roc_auc}}, "
     "reference: {start: 2026-01-01, end: 2026-01-31}}}",
     ["roc_auc", "not a regression metric", "mae"]),
    ("models: {m: {task: regression, features: {'bad name': {type: numeric}}, "
     "reference: {start: 2026-01-01, end: 2026-01-31}}}",
     ["bad name", "plain identifier"]),
    ("models: {m: {task: regression, ranking_bins: 1000, reference: {start: 2026-01-01, end: 2026-01-31}}}",
     ["ranking_bins", "binary_classification"]),
    ("models: {m: {task: binary_classification, ranking_bins: 10, reference: {start: 2026-01-01, end: 2026-01-31}}}",
     ["models.m.ranking_bins", "greater than or equal to 100"]),
    ("warehouse_memory_limit: lots\nmodels: {m: {task: regression, reference: {start: 2026-01-01, end: 2026-01-31}}}",
     ["warehouse_memory_limit", "'lots'", "pattern"]),
])
def test_invalid_configuration_names_key_value_and_expectation(text, expected):
    with pytest.raises(ConfigError) as error:
        parse_config(text, source="test.yml", base_dir=Path("."))
    message = str(error.value)
    assert message.startswith("test.yml: invalid configuration")
    for fragment in expected:
        assert fragment in message
    # Where to read every option: files a user of this repository has.
    assert "README" in message and (REPO / "include/mlwatch/demo/mlwatch.yml").is_file()
    assert "include/mlwatch/demo/mlwatch.yml" in message and "shared/" not in message


def test_one_column_has_one_type_across_models():
    text = textwrap.dedent("""
        models:
          a: {task: regression, reference: {start: 2026-01-01, end: 2026-01-02}, features: {x: {type: numeric}}}
          b: {task: regression, reference: {start: 2026-01-01, end: 2026-01-02}, features: {x: {type: categorical}}}
    """)
    with pytest.raises(ConfigError, match="column 'x' is categorical in model 'b' but numeric in model 'a'"):
        parse_config(text, source="t.yml", base_dir=Path("."))


def test_missing_config_file_is_a_usage_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yml")
