"""Small tools the tests share: configurations, toy landing zones, warehouse fingerprints."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import yaml

from mlwatch.config import Config, embedded_config_text, load_config

DAY = dt.timedelta(days=1)


def write_config(folder: Path, landing: Path, *, edit=None) -> Config:
    """The demo configuration with its paths inside `folder`; `edit(dict)` may change it."""
    data = yaml.safe_load(embedded_config_text())
    data.update(landing=str(landing), warehouse=str(folder / "warehouse" / "mlwatch.duckdb"),
                reports=str(folder / "reports"))
    if edit:
        edit(data)
    path = folder / "mlwatch.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(path)


TOY_CONFIG = {
    "slack": {"default_channel": "#ml-alerts", "alerts_per_day": 10},
    "models": {
        "toy": {
            "task": "binary_classification",
            "owner": "@toy-owner",
            "slack_channel": "#toy-alerts",
            "label_delay_days": 5,
            "reference": {"start": "2026-03-01", "end": "2026-03-10"},
            "windows": [1, 3],
            "min_labeled_rows": 30,
            "slos": {"performance": {"metric": "roc_auc", "max_relative_drop": 0.05,
                                     "min_labeled": 100, "window_days": 3}},
            "playbooks": {"performance_drop": "retrain"},
        }
    },
    "playbooks": {"retrain": {"title": "Retrain on recent labeled data",
                              "steps": ["Confirm the drop", "Request retraining"], "action": "retrain"}},
}


def toy_config(folder: Path, *, edit=None) -> Config:
    import copy

    data = dict(copy.deepcopy(TOY_CONFIG), landing=str(folder / "landing"),
                warehouse=str(folder / "warehouse" / "mlwatch.duckdb"), reports=str(folder / "reports"))
    if edit:
        edit(data)
    path = folder / "mlwatch.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(path)


def write_toy_day(landing: Path, day: dt.date, *, n: int = 400, degraded: bool = False, seed: int = 0,
                  canary: tuple[str, float, bool] | None = None) -> None:
    """One day of the 'toy' model: a good ranker, or noise when degraded. Labels land next day.

    canary=(version, share, degraded): that share of traffic is served by another version.
    """
    rng = np.random.default_rng([seed, day.toordinal()])
    y = (rng.random(n) < 0.3).astype(int)
    score = rng.random(n) if degraded else np.clip(0.5 * y + 0.5 * rng.random(n), 0, 1)
    version = np.full(n, "v1", dtype=object)
    if canary:
        served = rng.random(n) < canary[1]
        version[served] = canary[0]
        if canary[2]:
            score = np.where(served, rng.random(n), score)
    moments = pd.Timestamp(day) + pd.to_timedelta(np.sort(rng.uniform(60, 80_000, n)), unit="s")
    predictions = pd.DataFrame({
        "prediction_id": [f"toy-{day:%Y%m%d}-{i}" for i in range(n)],
        "model_name": "toy",
        "model_version": version,
        "event_at": moments - pd.Timedelta(seconds=5),
        "predicted_at": moments,
        "score": np.round(score, 4),
    })
    labels = pd.DataFrame({
        "prediction_id": predictions["prediction_id"],
        "model_name": "toy",
        "label": y.astype(str),
        "labeled_at": pd.Timestamp(day + DAY) + pd.to_timedelta(rng.uniform(0, 80_000, n), unit="s"),
    })
    write_partition(landing, "predictions", day, predictions, "toy.parquet")
    write_partition(landing, "labels", day + DAY, labels, "toy.csv")


def write_partition(landing: Path, feed: str, day: dt.date, frame: pd.DataFrame, name: str) -> Path:
    folder = Path(landing) / feed / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    elif name.endswith(".csv"):
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True, date_format="iso")
    return path


# mlwatch's measurements of itself are timings: they differ from run to run by nature.
TIMINGS = {"ops.step_runs": None, "marts.constraint_ledger": "source <> 'mlwatch'"}


def fingerprint(warehouse: Path, *, exclude_columns: dict[str, set[str]] | None = None) -> dict[str, tuple]:
    """Row count and an order-independent checksum of every table in the warehouse,
    leaving out mlwatch's timings of its own steps (TIMINGS)."""
    exclude_columns = exclude_columns or {}
    result = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' ORDER BY 1, 2").fetchall()
        for schema, table in tables:
            name = f"{schema}.{table}"
            if name in TIMINGS and TIMINGS[name] is None:
                continue
            where = f" WHERE {TIMINGS[name]}" if name in TIMINGS else ""
            columns = [r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
                "ORDER BY ordinal_position", [schema, table]).fetchall()]
            kept = [c for c in columns if c not in exclude_columns.get(name, set())]
            projection = ", ".join(f'"{c}"' for c in kept)
            count, checksum = con.execute(
                f"SELECT count(*), sum(hash(t)) FROM (SELECT {projection} FROM {name}{where}) AS t").fetchone()
            result[name] = (count, checksum)
    return result


def run_alert_commands(config: Config, alerts: list[dict], folder: Path) -> dict[str, list[str]]:
    """Paste every alert's command to act and first-look query, as its message shows them,
    into a shell against a copy of `config`'s warehouse; each must succeed. Returns the
    commands run per alert kind."""
    import shutil
    import subprocess
    import sys

    import duckdb

    from mlwatch.alerts import messages

    copy = folder / "warehouse" / config.warehouse.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config.warehouse, copy)
    text = Path(config.source).read_text().replace(str(config.warehouse), str(copy))
    (folder / "mlwatch.yml").write_text(text.replace(str(config.reports), str(folder / "reports")))
    ran: dict[str, list[str]] = {}
    for alert in alerts:
        with duckdb.connect(str(copy), read_only=True) as con:
            previous = messages.previous_version(con, alert["model_name"], alert.get("model_version"))
        said = messages.alert_opened(alert, config, previous=previous)
        for command in (said.command, said.look):
            if not command:
                continue
            assert command.startswith("mlwatch "), command
            shell = f"{sys.executable} -m mlwatch.cli " + command.removeprefix("mlwatch ")
            done = subprocess.run(["bash", "-c", shell], cwd=folder, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, f"{alert['kind']}: {command}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
            ran.setdefault(alert["kind"], []).append(command)
    return ran
