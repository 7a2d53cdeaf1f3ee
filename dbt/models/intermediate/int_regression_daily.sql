{#- Regression models: per model, version, day, segment and raw segment value,
    the sums every metric needs. The spread of the outcome is kept as a per-day mean and
    sum of squared deviations, combined across days without cancellation (Chan et al.).

    Every sum is exact (macros/exact_sums.sql): the terms are the user's numbers, so each
    kind of term gets one fixed-point scale per model from its largest magnitude in the
    night's rows, carried in the *_scale columns for metrics to turn the sums back. -#}

with rows_by_version as (
    select
        model_name, version_group as model_version, prediction_day, segment, segment_raw_value,
        score,
        -- A label that is no finite number ('nan', 'inf') is no outcome: it would make
        -- every sum of its group NaN, and a fixed-point decimal cannot hold it.
        case when label_value - label_value = 0 then label_value end as label_value,
        is_labeled, min_labeled_rows
    from {{ ref('int_predictions_segmented') }}
    where task = 'regression'
),

terms as (
    select
        *,
        abs(label_value - score) as abs_error,
        (label_value - score) * (label_value - score) as squared_error,
        abs(label_value - score) / greatest(abs(label_value), 2.220446049250313e-16) as ape
    from rows_by_version
),

bounds as (
    select
        model_name,
        {{ bound_exponent('max(abs_error)') }} as error_bound,
        {{ bound_exponent('max(ape)') }} as ape_bound,
        {{ bound_exponent('max(abs(label_value))') }} as label_bound
    from terms
    group by model_name
),

scaled as (
    select
        terms.*,
        {{ fixed_point_scale('bounds.error_bound') }} as error_scale,
        {{ fixed_point_scale('2 * bounds.error_bound') }} as squared_error_scale,
        {{ fixed_point_scale('4 * bounds.error_bound') }} as squared_error_square_scale,
        {{ fixed_point_scale('bounds.ape_bound') }} as ape_scale,
        {{ fixed_point_scale('2 * bounds.ape_bound') }} as ape_square_scale,
        {{ fixed_point_scale('bounds.label_bound') }} as label_scale,
        -- (label - day mean)^2 <= (2 max |label|)^2
        {{ fixed_point_scale('2 * bounds.label_bound + 2') }} as deviation_scale
    from terms
    inner join bounds on bounds.model_name = terms.model_name
),

day_means as (
    select
        *,
        {{ from_fixed_point(
            'sum(' ~ fixed_point('label_value', 'label_scale') ~ ') over (partition by model_name, model_version, prediction_day, segment, segment_raw_value)',
            'label_scale') }}
        / nullif(count(label_value) over (partition by model_name, model_version, prediction_day, segment, segment_raw_value), 0)
            as day_mean
    from scaled
)

select
    model_name,
    model_version,
    prediction_day,
    segment,
    segment_raw_value,
    min(min_labeled_rows) as min_labeled_rows,
    count(*) as n_predictions,
    count(label_value) as n_labeled,
    min(error_scale) as error_scale,
    min(squared_error_scale) as squared_error_scale,
    min(squared_error_square_scale) as squared_error_square_scale,
    min(ape_scale) as ape_scale,
    min(ape_square_scale) as ape_square_scale,
    min(label_scale) as label_scale,
    min(deviation_scale) as deviation_scale,
    sum({{ fixed_point('abs_error', 'error_scale') }}) as sum_abs_error,
    sum({{ fixed_point('squared_error', 'squared_error_scale') }}) as sum_squared_error,
    sum({{ fixed_point('squared_error * squared_error', 'squared_error_square_scale') }}) as sum_squared_error_sq,
    sum({{ fixed_point('ape', 'ape_scale') }}) as sum_ape,
    sum({{ fixed_point('ape * ape', 'ape_square_scale') }}) as sum_ape_sq,
    sum({{ fixed_point('label_value', 'label_scale') }}) as sum_label,
    min(day_mean) as mean_label,
    sum({{ fixed_point('(label_value - day_mean) * (label_value - day_mean)', 'deviation_scale') }}) as m2_label
from day_means
group by model_name, model_version, prediction_day, segment, segment_raw_value
