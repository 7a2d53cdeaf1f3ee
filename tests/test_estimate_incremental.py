"""The estimate costs what arrived: once its calibration is final, a night keeps the
calibration, counts only its own day's predictions (int_estimated_days) and estimates only
the windows that hold it; a partition delivered again is counted again (a reference day:
the calibration too); and the estimates kept from earlier nights equal those a backfill
computes from scratch."""

import datetime as dt

import duckdb

from mlwatch import nightly, transform
from tests.helpers import toy_config, write_toy_day

DAY = dt.timedelta(days=1)
FIRST, LAST = dt.date(2026, 3, 1), dt.date(2026, 3, 19)
# The toy's reference ends 2026-03-10 with labels up to 5 days late: its calibration is
# final from the night of 2026-03-15 on.
FINAL = dt.date(2026, 3, 15)


def counted_on(config, night: dt.date) -> set[dt.date]:
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        return {d for (d,) in con.execute("SELECT DISTINCT prediction_day FROM intermediate.int_estimated_days "
                                          "WHERE counted_on = ?", [night]).fetchall()}


def estimates(config) -> list[tuple]:
    with duckdb.connect(str(config.warehouse), read_only=True) as con:
        return con.execute("SELECT * FROM marts.performance_estimated ORDER BY ALL").fetchall()


def calibration_computed(config) -> bool:
    """Whether the last build computed the calibration (rather than keeping it)."""
    compiled = next(transform.artifacts_dir(config).glob("target/compiled/**/int_binary_calibration.sql"))
    return "Every calibration is current" not in compiled.read_text()


def test_a_night_counts_its_own_day_a_redelivered_partition_again_and_keeps_the_rest(tmp_path):
    (tmp_path / "nightly").mkdir()
    (tmp_path / "backfill").mkdir()
    nightly_config = toy_config(tmp_path / "nightly")
    landing = tmp_path / "nightly" / "landing"
    day = FIRST
    while day <= LAST:
        write_toy_day(landing, day, degraded=day >= dt.date(2026, 3, 16))
        day += DAY

    nightly.backfill(nightly_config, FIRST, FINAL + DAY, backtest=False)
    night = FINAL + 2 * DAY
    while night <= LAST:
        nightly.run_night(nightly_config, night)
        assert counted_on(nightly_config, night) == {night}
        assert not calibration_computed(nightly_config)
        night += DAY

    # 2026-03-17's predictions are delivered again, changed: the rerun of the last night
    # counts that day again, and no other.
    write_toy_day(landing, dt.date(2026, 3, 17), seed=1)
    nightly.run_night(nightly_config, LAST)
    assert counted_on(nightly_config, LAST) == {dt.date(2026, 3, 17), LAST}
    assert not calibration_computed(nightly_config)

    # The estimates kept from earlier nights, with tonight's realized values, equal a
    # backfill's from scratch.
    from_scratch = toy_config(tmp_path / "backfill", edit=lambda data: data.update(landing=str(landing)))
    nightly.backfill(from_scratch, FIRST, LAST, backtest=False)
    kept, computed = estimates(nightly_config), estimates(from_scratch)
    assert kept == computed and len(kept) > 100

    # A reference day delivered again changes the calibration: computed again, and every
    # day counted again with it.
    write_toy_day(landing, dt.date(2026, 3, 5), seed=2)
    nightly.run_night(nightly_config, LAST)
    assert calibration_computed(nightly_config)
    assert counted_on(nightly_config, LAST) >= {dt.date(2026, 3, 5), FINAL, LAST}


# The SQL the stored rows were computed with, as of estimate_cache_version() below.
ESTIMATE_SQL = ("dbt/macros/estimated_days.sql", "dbt/macros/estimated_performance.sql", "dbt/macros/same_values.sql",
                "dbt/macros/segment_rows.sql", "dbt/macros/window_days.sql",
                "dbt/models/marts/performance_estimated.sql",
                "dbt/models/intermediate/int_predictions_in_scope.sql",
                "dbt/models/intermediate/int_predictions_labeled.sql",
                "dbt/models/intermediate/int_predictions_segmented.sql",
                "dbt/models/intermediate/int_segment_buckets.sql",
                "dbt/models/intermediate/int_window_ends.sql")
ESTIMATE_SQL_MD5 = "875b04c6bed87ea6dd614d40bbe8795e"


def test_a_change_to_the_estimates_sql_changes_its_cache_version():
    import hashlib
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    text = "".join((root / path).read_text() for path in ESTIMATE_SQL)
    version = re.search(r"estimate_cache_version\(\) -%\}(.*?)\{%- endmacro", text).group(1)
    digest = hashlib.md5(re.sub(r"estimate_cache_version\(\) -%\}.*?\{%-", "", text).encode()).hexdigest()
    assert (version, digest) == ("2026-12-07.4", ESTIMATE_SQL_MD5), (
        "The estimate's SQL changed: warehouses keep rows computed with the old SQL unless "
        "estimate_cache_version() in dbt/macros/estimated_days.sql changes. Set it to a new value, "
        f"then set this test's version to it and ESTIMATE_SQL_MD5 to {digest!r}.")
