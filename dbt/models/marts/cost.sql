{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ replace_range('day', first_window_end(), run_date()) }}",
    )
}}

{#- Cost per model and day: the costs feed plus the per-prediction cost_usd logged with
    predictions, per prediction and per thousand predictions. -#}

with components as (
    select * from {{ ref('cost_components') }}
    where day between {{ first_window_end() }} and {{ run_date() }}
),

volumes as (
    select model_name, prediction_day as day, count(*) as n_predictions
    from {{ ref('int_predictions_in_scope') }}
    where prediction_day between {{ first_window_end() }} and {{ run_date() }}
    group by model_name, prediction_day
),

totals as (
    select
        model_name,
        day,
        sum(cost_usd) as cost_usd,
        sum(case when component = 'per_prediction' then cost_usd else 0 end) as prediction_cost_usd
    from components
    group by model_name, day
),

days as (
    select model_name, day from volumes
    union
    select model_name, day from totals
)

select
    days.model_name,
    days.day,
    cast(coalesce(volumes.n_predictions, 0) as {{ dbt.type_bigint() }}) as n_predictions,
    coalesce(totals.cost_usd, 0) as cost_usd,
    coalesce(totals.cost_usd, 0) - coalesce(totals.prediction_cost_usd, 0) as feed_cost_usd,
    coalesce(totals.prediction_cost_usd, 0) as prediction_cost_usd,
    {{ safe_divide('coalesce(totals.cost_usd, 0)', 'volumes.n_predictions') }} as cost_per_prediction_usd,
    {{ safe_divide('1000 * coalesce(totals.cost_usd, 0)', 'volumes.n_predictions') }} as cost_per_1k_predictions_usd
from days
left join volumes on volumes.model_name = days.model_name and volumes.day = days.day
left join totals on totals.model_name = days.model_name and totals.day = days.day
