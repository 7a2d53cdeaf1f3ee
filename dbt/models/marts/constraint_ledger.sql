{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ replace_range('day', first_window_end(), run_date(), where=\"source = 'telemetry'\") }}",
    )
}}

{#- The constraint ledger from the serving pipeline's telemetry, per day and stage.

    capacity (records/s) = records_out / busy_seconds x workers and utilization =
    busy_seconds / (window_seconds x workers), as the contract defines them, over the day;
    peak_utilization and peak_offered_rps over the day's busiest hour. The constraint is the
    stage that saturates: peak-hour utilization at or above var('constraint_utilization')
    and a queue that grew during the day (the most utilized such stage). When no stage
    saturates, it is the stage with the least headroom: the lowest capacity relative to the
    load offered to it in its peak hour. The what-if gives the system's capacity if the
    constraint had var('what_if_factor') times its capacity, the stage the constraint moves
    to once it is relieved (the next lowest capacity), and the factor that moves it there.

    mlwatch's own nightly steps (source 'mlwatch') are written by mlwatch after the night's
    work (include/mlwatch/self_measure.py); this model owns the 'telemetry' rows only. -#}

{%- set saturation = var('constraint_utilization', 0.9) -%}
{%- set factor = var('what_if_factor', 2) %}

with telemetry as (
    select * from {{ ref('stg_raw__stages') }}
    where window_day between {{ first_window_end() }} and {{ run_date() }}
),

ordered as (
    select
        telemetry.*,
        row_number() over (partition by window_day, stage order by window_start) as nth_interval
    from telemetry
),

daily as (
    select
        window_day as day,
        stage,
        sum(records_in) as records_in,
        sum(records_out) as records_out,
        sum(records_dropped) as records_dropped,
        sum(busy_seconds) as busy_seconds,
        sum(window_seconds) as window_seconds,
        max(workers) as workers,
        {{ percentile_cont('p95_latency_ms', 0.95) }} as p95_latency_ms,
        max(queue_depth) as queue_depth,
        max(case when nth_interval = 1 then queue_depth end) as queue_depth_at_start,
        sum(coalesce(failures, 0)) as failures
    from ordered
    group by window_day, stage
),

failure_modes as (
    select
        window_day as day,
        stage,
        failure_mode,
        row_number() over (
            partition by window_day, stage order by sum(coalesce(failures, 0)) desc, failure_mode
        ) as rank_in_day
    from telemetry
    where failure_mode is not null
    group by window_day, stage, failure_mode
),

peaks as (
    select
        day,
        stage,
        max(busy_seconds / nullif(window_seconds * workers, 0)) as peak_utilization,
        max(records_in / nullif(window_seconds, 0)) as peak_offered_rps
    from {{ ref('int_stage_hours') }}
    group by day, stage
),

measured as (
    select
        daily.day,
        daily.stage,
        pipeline.stage_order,
        daily.records_in,
        daily.records_out,
        daily.records_dropped,
        daily.busy_seconds,
        daily.window_seconds,
        daily.workers,
        daily.records_out / nullif(daily.busy_seconds, 0) * daily.workers as capacity_rps,
        daily.records_out / nullif(daily.window_seconds, 0) as throughput_rps,
        daily.records_in / nullif(daily.window_seconds, 0) as offered_rps,
        daily.busy_seconds / nullif(daily.window_seconds * daily.workers, 0) as utilization,
        peaks.peak_utilization,
        peaks.peak_offered_rps,
        daily.p95_latency_ms,
        daily.queue_depth,
        daily.queue_depth - coalesce(daily.queue_depth_at_start, 0) as queue_growth,
        failure_modes.failure_mode as top_failure_mode,
        daily.failures
    from daily
    left join {{ ref('stg_config__pipeline') }} as pipeline on daily.stage = pipeline.stage
    left join peaks on daily.day = peaks.day and daily.stage = peaks.stage
    left join failure_modes
        on daily.day = failure_modes.day and daily.stage = failure_modes.stage and failure_modes.rank_in_day = 1
),

judged as (
    select
        measured.*,
        measured.capacity_rps / nullif(measured.peak_offered_rps, 0) as headroom,
        case
            when measured.peak_utilization >= {{ saturation }} and measured.queue_growth > 0 then 1 else 0
        end as saturated
    from measured
),

ranked as (
    select
        judged.*,
        max(saturated) over (partition by day) as any_saturated,
        row_number() over (
            partition by day
            order by saturated desc,
                     case when saturated = 1 then -peak_utilization else headroom end,
                     stage_order
        ) as constraint_rank
    from judged
),

runner_up as (
    select day, stage as next_constraint, capacity_rps as next_capacity_rps
    from (
        select
            day,
            stage,
            capacity_rps,
            row_number() over (partition by day order by capacity_rps, stage_order) as rank_among_others
        from ranked
        where constraint_rank > 1 and capacity_rps is not null
    ) as others
    where rank_among_others = 1
),

constraint_capacity as (
    select day, capacity_rps as constraint_capacity_rps
    from ranked
    where constraint_rank = 1
),

what_if as (
    select
        ranked.*,
        runner_up.next_constraint,
        runner_up.next_capacity_rps,
        constraint_capacity.constraint_capacity_rps
    from ranked
    left join runner_up on ranked.day = runner_up.day
    left join constraint_capacity on ranked.day = constraint_capacity.day
)

select
    what_if.day,
    what_if.stage,
    cast('telemetry' as {{ dbt.type_string() }}) as source,
    what_if.stage_order,
    what_if.capacity_rps,
    what_if.throughput_rps,
    what_if.offered_rps,
    what_if.utilization,
    what_if.peak_utilization,
    what_if.peak_offered_rps,
    what_if.headroom,
    what_if.p95_latency_ms,
    what_if.queue_depth,
    what_if.queue_growth,
    what_if.top_failure_mode,
    what_if.failures,
    what_if.records_in,
    what_if.records_out,
    what_if.records_dropped,
    what_if.busy_seconds as seconds,
    what_if.constraint_rank = 1 as is_constraint,
    case
        when what_if.constraint_rank > 1 then null
        when what_if.any_saturated = 1 then 'saturated'
        else 'least_headroom'
    end as constraint_rule,
    min(what_if.capacity_rps) over (partition by what_if.day) as system_capacity_rps,
    cast({{ factor }} as {{ type_double() }}) as what_if_factor,
    case
        when what_if.next_capacity_rps is null then what_if.constraint_capacity_rps * {{ factor }}
        when what_if.constraint_capacity_rps * {{ factor }} < what_if.next_capacity_rps
            then what_if.constraint_capacity_rps * {{ factor }}
        else what_if.next_capacity_rps
    end as what_if_system_capacity_rps,
    what_if.next_constraint,
    what_if.next_capacity_rps / nullif(what_if.constraint_capacity_rps, 0) as relief_factor
from what_if
