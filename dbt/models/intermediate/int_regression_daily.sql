{#- Regression models: per model, version, day, segment and raw segment value,
    the sums every metric needs. The spread of the outcome is kept as a per-day mean and
    sum of squared deviations, combined across days without cancellation (Chan et al.). -#}

with rows_by_version as (
    select
        model_name, version_group as model_version, prediction_day, segment, segment_raw_value,
        score, label_value, is_labeled, min_labeled_rows
    from {{ ref('int_predictions_segmented') }}
    where task = 'regression'
),

terms as (
    select
        *,
        abs(label_value - score) as abs_error,
        (label_value - score) * (label_value - score) as squared_error,
        abs(label_value - score) / greatest(abs(label_value), 2.220446049250313e-16) as ape,
        avg(label_value) over (
            partition by model_name, model_version, prediction_day, segment, segment_raw_value
        ) as day_mean
    from rows_by_version
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
    sum(abs_error) as sum_abs_error,
    sum(squared_error) as sum_squared_error,
    sum(squared_error * squared_error) as sum_squared_error_sq,
    sum(ape) as sum_ape,
    sum(ape * ape) as sum_ape_sq,
    sum(label_value) as sum_label,
    avg(label_value) as mean_label,
    sum((label_value - day_mean) * (label_value - day_mean)) as m2_label
from terms
group by model_name, model_version, prediction_day, segment, segment_raw_value
