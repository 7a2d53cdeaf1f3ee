{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ replace_range('window_end', first_window_end(), run_date()) }}",
    )
}}

{#- Model performance per version, trailing window, window end and segment, with 95%
    intervals (see macros/performance_metrics.sql) and the reference-period value.

    Segment rows: each configured segment column's top values by volume get their own
    rows, the rest one '__other__' row (int_segment_buckets).

    The reference value of a window ending on day D is the metric over the part of the
    model's reference period up to D, all versions together, in the same segment bucket:
    a window that ends inside the reference period is compared with what was known of
    the reference by then. -#}
{%- set window_groups = ['model_name', 'model_version', 'window_end', 'window_days', 'segment', 'segment_value'] %}
{%- set reference_groups = ['model_name', 'reference_until', 'segment', 'segment_value'] %}

with window_ends as (
    select * from {{ ref('int_window_ends') }}
),

buckets as (
    select * from {{ ref('int_segment_buckets') }}
),

reference_slices as (
    select distinct model_name, reference_start, reference_until
    from window_ends
    where reference_until is not null
),

{%- for task, relation in [('binary', 'int_binary_daily'), ('binary_score', 'int_binary_score_counts'),
                           ('regression', 'int_regression_daily'), ('multiclass', 'int_multiclass_daily')] %}

{{ task }}_days as (
    select * from {{ ref(relation) }}
),

{{ task }}_window_days as (
    select
        window_ends.window_end,
        window_ends.window_days,
        case when days.segment = '__all__' then '__all__' else coalesce(buckets.segment_value, '__other__') end
            as segment_value,
        days.*
    from {{ task }}_days as days
    inner join window_ends
        on window_ends.model_name = days.model_name
        and days.prediction_day between window_ends.window_start and window_ends.window_end
    left join buckets
        on buckets.model_name = days.model_name
        and buckets.segment_basis_start = window_ends.segment_basis_start
        and buckets.segment_basis_end = window_ends.segment_basis_end
        and buckets.segment = days.segment
        and buckets.segment_raw_value = days.segment_raw_value
),

{{ task }}_reference_days as (
    select
        reference_slices.reference_until,
        case when days.segment = '__all__' then '__all__' else coalesce(buckets.segment_value, '__other__') end
            as segment_value,
        days.*
    from {{ task }}_days as days
    inner join reference_slices
        on reference_slices.model_name = days.model_name
        and days.model_version = '__all__'
        and days.prediction_day between reference_slices.reference_start and reference_slices.reference_until
    left join buckets
        on buckets.model_name = days.model_name
        and buckets.segment_basis_start = reference_slices.reference_start
        and buckets.segment_basis_end = reference_slices.reference_until
        and buckets.segment = days.segment
        and buckets.segment_raw_value = days.segment_raw_value
),
{%- endfor %}

window_metrics as (
    select * from {{ binary_metrics('binary_window_days', 'binary_score_window_days', window_groups) }}
    union all
    select * from {{ regression_metrics('regression_window_days', window_groups) }}
    union all
    select * from {{ multiclass_metrics('multiclass_window_days', window_groups) }}
),

reference_metrics as (
    select * from {{ binary_metrics('binary_reference_days', 'binary_score_reference_days', reference_groups) }}
    union all
    select * from {{ regression_metrics('regression_reference_days', reference_groups) }}
    union all
    select * from {{ multiclass_metrics('multiclass_reference_days', reference_groups) }}
)

select
    window_metrics.model_name,
    window_metrics.model_version,
    window_metrics.window_days,
    window_metrics.window_end,
    window_metrics.segment,
    window_metrics.segment_value,
    window_metrics.metric,
    window_metrics.value,
    window_metrics.n_predictions,
    window_metrics.n_labeled,
    {{ safe_divide('window_metrics.n_labeled', 'window_metrics.n_predictions') }} as label_coverage,
    window_metrics.ci_low,
    window_metrics.ci_high,
    reference_metrics.value as reference_value
from window_metrics
inner join window_ends
    on window_ends.model_name = window_metrics.model_name
    and window_ends.window_days = window_metrics.window_days
    and window_ends.window_end = window_metrics.window_end
left join reference_metrics
    on reference_metrics.model_name = window_metrics.model_name
    and reference_metrics.reference_until = window_ends.reference_until
    and reference_metrics.segment = window_metrics.segment
    and reference_metrics.segment_value = window_metrics.segment_value
    and reference_metrics.metric = window_metrics.metric
