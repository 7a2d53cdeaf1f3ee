with source as (
    select * from {{ source('raw', 'stages') }}
)

select
    _partition_date,
    cast(window_start as date) as window_day,
    stage,
    window_start,
    window_seconds,
    records_in,
    records_out,
    records_dropped,
    busy_seconds,
    workers,
    queue_depth,
    p95_latency_ms,
    failure_mode,
    failures
from source
