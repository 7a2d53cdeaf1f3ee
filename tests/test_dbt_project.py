"""The dbt project documents what users query and tests every mart."""

from pathlib import Path

import duckdb
import yaml

from tests.conftest import REPO

DBT = REPO / "dbt"


def documented_models():
    models = {}
    for path in (DBT / "models").rglob("*.yml"):
        for model in yaml.safe_load(path.read_text()).get("models", []):
            models[model["name"]] = model
    return models


def test_every_model_has_a_yaml_entry_and_every_mart_column_is_documented(demo_warehouse):
    models = documented_models()
    sql_models = {p.stem for p in (DBT / "models").rglob("*.sql")}
    assert sql_models <= set(models), sql_models - set(models)
    with duckdb.connect(str(demo_warehouse.warehouse), read_only=True) as con:
        for path in (DBT / "models" / "marts").glob("*.sql"):
            columns = {r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts' AND table_name = ?",
                [path.stem]).fetchall()}
            assert columns, path.stem
            entry = models[path.stem]
            described = {c["name"] for c in entry.get("columns", []) if c.get("description")}
            assert columns == described, (path.stem, columns ^ described)
            assert entry.get("description")


def test_every_mart_has_a_key_test():
    for name, model in documented_models().items():
        if (DBT / "models" / "marts" / f"{name}.sql").exists():
            tests = [next(iter(t)) if isinstance(t, dict) else t for t in model.get("data_tests", [])]
            assert "unique_combination_of_columns" in tests, name


def test_the_fast_cte_injection_writes_what_dbt_writes(tmp_path, monkeypatch):
    """mlwatch.cte_injection skips dbt's sqlparse pass over each statement; the SQL must
    be the string dbt would have run, for every model with ephemeral parents, on a nightly
    build and on a replayed night."""
    import datetime as dt

    import dbt.compilation

    from mlwatch import cte_injection, transform
    from tests.helpers import toy_config, write_toy_day

    config = toy_config(tmp_path)
    day = dt.date(2026, 3, 1)
    write_toy_day(config.landing, day)
    dbts = getattr(dbt.compilation.inject_ctes_into_sql, "dbt_original", dbt.compilation.inject_ctes_into_sql)
    compared = []

    def both(sql, ctes):
        ours = cte_injection.inject(sql, ctes, fallback=lambda *_: None)
        theirs = dbts(sql, ctes)
        compared.append((len(ctes), ours == theirs))
        return theirs

    monkeypatch.setattr(dbt.compilation, "inject_ctes_into_sql", both)
    for backtest_ends in (None, []):
        args = transform.dbt_args("compile", config, transform.artifacts_dir(config))
        _, failure = transform.invoke(args, config, day, day, backtest_ends=backtest_ends)
        assert failure is None
    with_parents = [same for n, same in compared if n]
    assert len(with_parents) >= 30 and all(with_parents), compared
