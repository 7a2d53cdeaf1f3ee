{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ replace_range('day', first_window_end(), run_date()) }}",
    )
}}

{#- Time to decision (predicted_at - event_at) per model and day: percentiles
    interpolated linearly between order statistics, as numpy.percentile does by
    default, and the serving latency's 95th percentile. -#}

with predictions as (
    select * from {{ ref('int_predictions_in_scope') }}
    where prediction_day between {{ first_window_end() }} and {{ run_date() }}
)

select
    model_name,
    prediction_day as day,
    cast(count(*) as {{ dbt.type_bigint() }}) as n,
    avg(time_to_decision_s) as mean_s,
    {{ percentile_cont('time_to_decision_s', 0.5) }} as p50_s,
    {{ percentile_cont('time_to_decision_s', 0.95) }} as p95_s,
    {{ percentile_cont('time_to_decision_s', 0.99) }} as p99_s,
    max(time_to_decision_s) as max_s,
    {{ percentile_cont('latency_ms', 0.95) }} as serving_latency_p95_ms
from predictions
group by model_name, prediction_day
