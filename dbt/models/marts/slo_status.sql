{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ replace_range('day', first_window_end(), run_date()) }}",
    )
}}

{#- Every SLO of the configuration, per model and day: the target, the actual value and
    whether it was met (NULL when the day has no figure to judge, e.g. too few labels).

      time_to_decision_p95_s       p95 of predicted_at - event_at that day       (<= target)
      performance                  the SLO metric over the SLO window ending that day,
                                   all versions; target = reference x (1 -/+ tolerance)
      min_feature_coverage         lowest coverage of a critical feature that day (>= target)
      max_data_loss                share of the model's input rows quarantined   (<= target)
      max_cost_per_prediction_usd  cost per prediction that day                  (<= target)
      min_label_coverage           label coverage of the day whose label horizon
                                   ended that day (day - label_delay_days)       (>= target)
-#}
{%- set branches = [] -%}
{%- for name, m in var('models').items() -%}
    {%- set s = m.slos -%}
    {%- if s.time_to_decision_p95_s is not none -%}{%- do branches.append((name, 'time_to_decision_p95_s', s)) -%}{%- endif -%}
    {%- do branches.append((name, 'performance', s)) -%}
    {%- if s.min_feature_coverage is not none and m.features -%}{%- do branches.append((name, 'min_feature_coverage', s)) -%}{%- endif -%}
    {%- if s.max_data_loss is not none -%}{%- do branches.append((name, 'max_data_loss', s)) -%}{%- endif -%}
    {%- if s.max_cost_per_prediction_usd is not none -%}{%- do branches.append((name, 'max_cost_per_prediction_usd', s)) -%}{%- endif -%}
    {%- if s.min_label_coverage is not none -%}{%- do branches.append((name, 'min_label_coverage', s)) -%}{%- endif -%}
{%- endfor %}

with time_to_decision as (
    select * from {{ ref('time_to_decision') }} where day between {{ first_window_end() }} and {{ run_date() }}
),

performance as (
    select * from {{ ref('performance') }}
    where window_end between {{ first_window_end() }} and {{ run_date() }}
        and model_version = '__all__' and segment = '__all__'
),

critical_coverage as (
    select
        model_name,
        day,
        min(coverage) as coverage,
        min(case when coverage = lowest then feature end) as feature
    from (
        select *, min(coverage) over (partition by model_name, day) as lowest
        from {{ ref('feature_coverage') }}
        where is_critical and day between {{ first_window_end() }} and {{ run_date() }}
    ) as ranked
    group by model_name, day
),

data_loss as (
    select model_name, day, {{ safe_divide('sum(n_quarantined)', 'sum(n_rows)') }} as share
    from {{ ref('data_quality') }}
    where day between {{ first_window_end() }} and {{ run_date() }}
    group by model_name, day
),

cost as (
    select * from {{ ref('cost') }} where day between {{ first_window_end() }} and {{ run_date() }}
),

maturity as (
    select * from {{ ref('label_maturity') }}
),

statuses as (
{%- for name, slo, s in branches %}
    {%- if slo == 'time_to_decision_p95_s' %}
    select model_name, day, '{{ slo }}' as slo, cast('seconds' as {{ dbt.type_string() }}) as detail,
        cast({{ s.time_to_decision_p95_s }} as {{ type_double() }}) as target, p95_s as actual,
        p95_s <= {{ s.time_to_decision_p95_s }} as met
    from time_to_decision where model_name = {{ sql_literal(name) }}
    {%- elif slo == 'performance' %}
        {%- set factor = (1 - s.performance_max_relative_drop) if s.performance_higher_is_better else (1 + s.performance_max_relative_drop) %}
    select model_name, window_end as day, '{{ slo }}' as slo,
        cast('{{ s.performance_metric }}, {{ s.performance_window_days }}-day window' as {{ dbt.type_string() }}) as detail,
        reference_value * {{ factor }} as target, value as actual,
        case when value is null or reference_value is null or n_labeled < {{ s.performance_min_labeled }} then null
             else value {{ '>=' if s.performance_higher_is_better else '<=' }} reference_value * {{ factor }} end as met
    from performance
    where model_name = {{ sql_literal(name) }} and metric = '{{ s.performance_metric }}'
        and window_days = {{ s.performance_window_days }}
    {%- elif slo == 'min_feature_coverage' %}
    select model_name, day, '{{ slo }}' as slo, feature as detail,
        cast({{ s.min_feature_coverage }} as {{ type_double() }}) as target, coverage as actual,
        coverage >= {{ s.min_feature_coverage }} as met
    from critical_coverage where model_name = {{ sql_literal(name) }}
    {%- elif slo == 'max_data_loss' %}
    select model_name, day, '{{ slo }}' as slo, cast('share of input rows quarantined' as {{ dbt.type_string() }}) as detail,
        cast({{ s.max_data_loss }} as {{ type_double() }}) as target, share as actual,
        share <= {{ s.max_data_loss }} as met
    from data_loss where model_name = {{ sql_literal(name) }}
    {%- elif slo == 'max_cost_per_prediction_usd' %}
    select model_name, day, '{{ slo }}' as slo, cast('usd' as {{ dbt.type_string() }}) as detail,
        cast({{ s.max_cost_per_prediction_usd }} as {{ type_double() }}) as target, cost_per_prediction_usd as actual,
        cost_per_prediction_usd <= {{ s.max_cost_per_prediction_usd }} as met
    from cost where model_name = {{ sql_literal(name) }}
    {%- elif slo == 'min_label_coverage' %}
    select model_name, known_on as day, '{{ slo }}' as slo,
        cast('predictions of ' as {{ dbt.type_string() }}) || cast(prediction_day as {{ dbt.type_string() }}) as detail,
        cast({{ s.min_label_coverage }} as {{ type_double() }}) as target, label_coverage as actual,
        label_coverage >= {{ s.min_label_coverage }} as met
    from maturity where model_name = {{ sql_literal(name) }} and is_mature
        and known_on between {{ first_window_end() }} and {{ run_date() }}
    {%- endif %}
    {% if not loop.last %}union all{% endif %}
{%- else %}
    select cast(null as {{ dbt.type_string() }}) as model_name, cast(null as date) as day,
        cast(null as {{ dbt.type_string() }}) as slo, cast(null as {{ dbt.type_string() }}) as detail,
        cast(null as {{ type_double() }}) as target, cast(null as {{ type_double() }}) as actual, cast(null as boolean) as met
    where 1 = 0
{%- endfor %}
)

select model_name, day, slo, detail, target, actual, met
from statuses
