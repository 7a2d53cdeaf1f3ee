{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ replace_range('day', first_window_end(), run_date()) }}",
    )
}}

{#- Cost per model, day and component: the costs feed's components, and
    'per_prediction' for the cost_usd logged with each prediction. -#}

with feed as (
    select costs.*
    from {{ ref('stg_raw__costs') }} as costs
    inner join {{ ref('stg_config__models') }} as models on models.model_name = costs.model_name
    where costs.cost_day between {{ first_window_end() }} and {{ run_date() }}
),

logged as (
    select model_name, prediction_day as day, sum(cost_usd) as cost_usd
    from {{ ref('int_predictions_in_scope') }}
    where prediction_day between {{ first_window_end() }} and {{ run_date() }}
        and cost_usd is not null
    group by model_name, prediction_day
)

select model_name, cost_day as day, component, sum(cost_usd) as cost_usd
from feed
group by model_name, cost_day, component
union all
select model_name, day, cast('per_prediction' as {{ dbt.type_string() }}) as component, cost_usd
from logged
