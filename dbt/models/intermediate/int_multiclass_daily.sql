{#- Multiclass models: per model, version, day, segment, raw segment value, true
    class and predicted class, the counts and log-loss sums the metrics need. The
    probability of the true class comes from the prediction's class_probabilities. -#}

with rows_by_version as (
    select
        model_name, version_group as model_version, prediction_day, segment, segment_raw_value,
        label, predicted_label, class_probabilities, is_labeled, min_labeled_rows
    from {{ ref('int_predictions_segmented') }}
    where task = 'multiclass_classification'
),

terms as (
    select
        *,
        case when is_labeled then
            -{{ clipped_ln(json_number('class_probabilities', 'label')) }}
        end as log_loss_term
    from rows_by_version
)

select
    model_name,
    model_version,
    prediction_day,
    segment,
    segment_raw_value,
    case when is_labeled then label end as true_class,
    predicted_label as predicted_class,
    min(min_labeled_rows) as min_labeled_rows,
    count(*) as n_predictions,
    sum(case when is_labeled then 1 else 0 end) as n_labeled,
    sum(case when log_loss_term is not null then 1 else 0 end) as n_with_probability,
    -- Exact fixed-point sums (macros/exact_sums.sql).
    sum({{ fixed_point('coalesce(log_loss_term, 0)', log_loss_scale()) }}) as sum_log_loss,
    sum({{ fixed_point('coalesce(log_loss_term * log_loss_term, 0)', log_loss_square_scale()) }}) as sum_log_loss_sq
from terms
group by 1, 2, 3, 4, 5, 6, 7
