{{ config(materialized='ephemeral') }}

{#- Stage telemetry per stage and hour: the peak hour decides whether a stage saturates,
    which a daily average hides (a stage can idle at night and drown at noon). -#}

select
    window_day as day,
    stage,
    {{ dbt.date_trunc('hour', 'window_start') }} as hour_start,
    sum(records_in) as records_in,
    sum(busy_seconds) as busy_seconds,
    sum(window_seconds) as window_seconds,
    max(workers) as workers
from {{ ref('stg_raw__stages') }}
where window_day between {{ first_window_end() }} and {{ run_date() }}
group by window_day, stage, {{ dbt.date_trunc('hour', 'window_start') }}
