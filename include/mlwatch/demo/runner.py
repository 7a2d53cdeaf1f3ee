"""`mlwatch demo`: a configuration, the landing zone and the pipeline over it."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from rich.console import Console

from mlwatch.config import Config, embedded_config_text, find_config_path, load_config
from mlwatch.demo.generator import DemoSpec, generate
from mlwatch.demo.incidents import INCIDENTS

MARKER = ".mlwatch-demo.json"


def prepare_config(explicit: Path | None, console: Console) -> Config:
    """The configuration to run the demo with; writes ./mlwatch.yml from the embedded one if none exists."""
    if find_config_path(explicit) is None:
        Path("mlwatch.yml").write_text(embedded_config_text())
        console.print("Wrote mlwatch.yml (the demo configuration); edit it to point mlwatch at your own data.")
    return load_config(explicit)


def make_landing(config: Config, spec: DemoSpec, progress: Callable[[str], None]) -> None:
    """Generate the landing zone unless the same one (same spec) is already there."""
    marker = Path(config.landing) / MARKER
    wanted = {k: str(v) for k, v in asdict(spec).items()}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        progress(f"landing zone {config.landing} already holds this demo data set; not regenerating")
        return
    progress(f"writing {spec.days} days of demo data to {config.landing} "
             f"({spec.fraud_per_day:,} + {spec.eta_per_day:,} predictions a day)")
    counts = generate(Path(config.landing), spec,
                      progress=lambda done, total: progress(f"generated day {done}/{total}") if done % 10 == 0 or done == total else None)
    marker.write_text(json.dumps(wanted, indent=1))
    progress("landing zone written: " + ", ".join(f"{n:,} {feed}" for feed, n in counts.items()))


def replay(config: Config, spec: DemoSpec, first_night: dt.date, progress: Callable[[str], None]):
    """The days before first_night in one pass, then every night on its own, as production runs."""
    from mlwatch import nightly

    if not spec.start < first_night <= spec.end:
        from mlwatch.errors import UsageError

        raise UsageError(f"--replay-from must lie in {spec.start + dt.timedelta(days=1)}..{spec.end}")
    report = nightly.backfill(config, spec.start, first_night - dt.timedelta(days=1), progress=progress)
    night = first_night
    while night <= spec.end:
        report = nightly.run_night(config, night, progress=progress)
        night += dt.timedelta(days=1)
    return report


def command_name() -> str:
    """How to call mlwatch from here: `mlwatch` when it is on PATH, else the path it was run by
    (`.venv/bin/mlwatch` after `make demo`)."""
    import shutil
    import sys

    running = Path(sys.argv[0])
    if running.name == "mlwatch" and shutil.which("mlwatch") != str(running.resolve()) and running.exists():
        try:
            return str(running.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(running.resolve())
    return "mlwatch"


def print_next_steps(config: Config, spec: DemoSpec, console: Console) -> None:
    console.print()
    console.print("[bold]Injected incidents[/bold] (see include/mlwatch/demo/incidents.py):")
    for incident in INCIDENTS:
        first, last = incident.first_day(spec.start), min(incident.last_day(spec.start, spec.days), spec.end)
        if first <= spec.end:
            console.print(f"  {first} .. {last}  {incident.description}", highlight=False)
    console.print()
    console.print(f"Warehouse: {config.warehouse}")
    console.print("Try:")
    mlwatch = command_name()
    console.print(f"  {mlwatch} sql \"select window_end, model_version, value, ci_low, ci_high, reference_value "
                  "from marts.performance where model_name = 'card_fraud' and metric = 'roc_auc' "
                  "and window_days = 7 and segment = '__all__' and model_version <> '__all__' "
                  "order by window_end desc limit 20\"",
                  highlight=False, soft_wrap=True)
    console.print(f"  {mlwatch} alerts", highlight=False)
