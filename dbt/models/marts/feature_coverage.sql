{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook=["{{ replace_range('day', first_window_end(), run_date()) }}", "{{ use_all_cores() }}"],
        post_hook="{{ use_one_core() }}",
    )
}}
{#- Integer counts and ratios of them only: the same numbers on any number of threads,
    so the model runs on every core (macros/exact_sums.sql). -#}

{#- Per model, day and feature: how many values were missing (NULL), the configured
    default or sentinel, or outside the contract (range or category list); coverage is
    the share present, non-default and within contract. Categorical features also count
    values out of vocabulary: outside the configured list, or, without a list, never seen
    in the reference period. -#}
{%- set branches = [] -%}
{%- for name, m in var('models').items() -%}
    {%- for feature, spec in m.features.items() -%}{%- do branches.append((name, feature, spec)) -%}{%- endfor -%}
{%- endfor %}

with predictions as (
    select * from {{ ref('int_predictions_in_scope') }}
    where prediction_day between {{ first_window_end() }} and {{ run_date() }}
),

reference as (
    select * from {{ ref('int_predictions_in_scope') }}
    where prediction_day between reference_start and least(reference_end, {{ run_date() }})
),

counts as (
{%- for name, feature, spec in branches %}
    {%- set column = 'predictions.' ~ adapter.quote(feature) %}
    {%- if spec.default is none %}
        {%- set is_default = 'false' %}
    {%- elif spec.type == 'numeric' %}
        {%- set is_default = column ~ ' = ' ~ spec.default %}
    {%- else %}
        {%- set is_default = 'cast(' ~ column ~ ' as ' ~ dbt.type_string() ~ ') = ' ~ sql_literal(spec.default | string) %}
    {%- endif %}
    {%- set invalid = [] %}
    {%- if spec.type == 'numeric' and spec.min is not none %}{% do invalid.append(column ~ ' < ' ~ spec.min) %}{% endif %}
    {%- if spec.type == 'numeric' and spec.max is not none %}{% do invalid.append(column ~ ' > ' ~ spec.max) %}{% endif %}
    {%- if spec.type == 'categorical' and spec['values'] is not none %}
        {%- set listed = [] %}{% for v in spec['values'] %}{% do listed.append(sql_literal(v | string)) %}{% endfor %}
        {%- do invalid.append(column ~ ' not in (' ~ listed | join(', ') ~ ')') %}
    {%- endif %}
    {%- set is_invalid = (invalid | join(' or ')) if invalid else 'false' %}
    {%- if spec.type == 'categorical' and spec['values'] is not none %}
        {%- set out_of_vocabulary = is_invalid %}
    {%- elif spec.type == 'categorical' %}
        {%- set out_of_vocabulary = column ~ ' not in (select distinct ' ~ adapter.quote(feature) ~ ' from reference where model_name = '
            ~ sql_literal(name) ~ ' and ' ~ adapter.quote(feature) ~ ' is not null)' %}
    {%- endif %}
    select
        predictions.model_name,
        predictions.prediction_day as day,
        cast({{ sql_literal(feature) }} as {{ dbt.type_string() }}) as feature,
        cast({{ sql_literal(spec.type) }} as {{ dbt.type_string() }}) as feature_type,
        {{ sql_literal(spec.critical) }} as is_critical,
        count(*) as n,
        sum(case when {{ column }} is null then 1 else 0 end) as n_null,
        sum(case when {{ column }} is not null and ({{ is_default }}) then 1 else 0 end) as n_default,
        sum(case when {{ column }} is not null and not ({{ is_default }}) and ({{ is_invalid }}) then 1 else 0 end) as n_invalid,
        {%- if spec.type == 'categorical' %}
        sum(case when {{ column }} is not null and not ({{ is_default }}) and ({{ out_of_vocabulary }}) then 1 else 0 end)
        {%- else %}
        cast(null as {{ dbt.type_bigint() }})
        {%- endif %} as n_out_of_vocabulary
    from predictions
    where predictions.model_name = {{ sql_literal(name) }}
    group by predictions.model_name, predictions.prediction_day
    {% if not loop.last %}union all{% endif %}
{%- else %}
    select
        cast(null as {{ dbt.type_string() }}) as model_name, cast(null as date) as day,
        cast(null as {{ dbt.type_string() }}) as feature, cast(null as {{ dbt.type_string() }}) as feature_type,
        false as is_critical, 0 as n, 0 as n_null, 0 as n_default, 0 as n_invalid,
        cast(null as {{ dbt.type_bigint() }}) as n_out_of_vocabulary
    where 1 = 0
{%- endfor %}
)

select
    model_name,
    day,
    feature,
    feature_type,
    is_critical,
    cast(n as {{ dbt.type_bigint() }}) as n,
    cast(n_null as {{ dbt.type_bigint() }}) as n_null,
    cast(n_default as {{ dbt.type_bigint() }}) as n_default,
    cast(n_invalid as {{ dbt.type_bigint() }}) as n_invalid,
    cast(n_out_of_vocabulary as {{ dbt.type_bigint() }}) as n_out_of_vocabulary,
    {{ safe_divide('n - n_null - n_default - n_invalid', 'n') }} as coverage,
    {{ safe_divide('n_null', 'n') }} as null_share,
    {{ safe_divide('n_default', 'n') }} as default_share,
    {{ safe_divide('n_invalid', 'n') }} as invalid_share,
    {{ safe_divide('n_out_of_vocabulary', 'n') }} as out_of_vocabulary_share
from counts
