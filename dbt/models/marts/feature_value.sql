{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ replace_range('window_end', first_window_end(), run_date()) }}",
    )
}}

{#- What each feature is worth for what it costs, per model and window end: importance
    (η² of the score on the feature over the judged window, from ops.feature_importance)
    divided by the feature's configured compute cost per prediction. A feature whose cost
    buys little importance (under var('prune_importance')) is on the prune list. -#}

{%- set prune_below = var('prune_importance', 0.01) %}

with importance as (
    select * from {{ source('ops', 'feature_importance') }}
    where window_end between {{ first_window_end() }} and {{ run_date() }}
),

valued as (
    select
        importance.model_name,
        importance.window_days,
        importance.window_end,
        importance.feature,
        importance.importance,
        importance.n_rows,
        importance.n_with_value,
        features.cost_per_prediction,
        features.is_critical,
        importance.importance / nullif(features.cost_per_prediction, 0) as value_per_cost
    from importance
    left join {{ ref('stg_config__features') }} as features
        on importance.model_name = features.model_name and importance.feature = features.feature_name
)

select
    valued.*,
    case when valued.value_per_cost is null then null else
        row_number() over (
            partition by valued.model_name, valued.window_end
            order by case when valued.value_per_cost is null then 1 else 0 end, valued.value_per_cost desc,
                     valued.feature
        )
    end as value_rank,
    coalesce(valued.cost_per_prediction > 0 and valued.importance < {{ prune_below }}, false) as prune
from valued
