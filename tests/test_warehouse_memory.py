"""warehouse_memory_limit reaches the DuckDB that dbt builds with."""

import datetime as dt

import pytest

from mlwatch import nightly, transform
from tests.helpers import toy_config, write_toy_day

DAY = dt.date(2026, 3, 12)


def test_the_dbt_build_keeps_to_the_configured_memory(tmp_path):
    for offset in range(3):
        write_toy_day(tmp_path / "landing", DAY - dt.timedelta(days=offset), n=2000)
    starved = toy_config(tmp_path, edit=lambda data: data.update(warehouse_memory_limit="1MB"))
    nightly.step_ingest(starved, DAY)
    with pytest.raises(transform.TransformError, match="(?i)out of memory") as error:
        transform.build(starved, DAY, select="+performance")
    assert "warehouse_memory_limit = 1MB" in str(error.value)

    enough = toy_config(tmp_path, edit=lambda data: data.update(warehouse_memory_limit="512MB"))
    transform.build(enough, DAY, select="+performance")
