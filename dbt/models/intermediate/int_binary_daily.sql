{#- Binary models: per model, version, day, segment and raw segment value, the
    counts and sums every metric but the ranking ones needs. Everything is additive, so
    a window is the sum of its days. -#}

with rows_by_version as (
    select
        model_name, version_group as model_version, prediction_day, segment, segment_raw_value, score,
        is_labeled, is_positive, is_predicted_positive, outcome_weight, min_labeled_rows
    from {{ ref('int_predictions_segmented') }}
    where task = 'binary_classification'
),

terms as (
    select
        *,
        case when is_positive = 1 then -{{ clipped_ln('score') }}
             when is_positive = 0 then -{{ clipped_ln('1 - score') }} end as log_loss_term,
        (score - is_positive) * (score - is_positive) as brier_term,
        coalesce(outcome_weight, 0) as weight
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
    sum(case when is_labeled then 1 else 0 end) as n_labeled,
    sum(case when is_positive = 1 then 1 else 0 end) as n_pos,
    sum(case when is_positive = 0 then 1 else 0 end) as n_neg,
    sum(is_predicted_positive) as n_predicted_positive,
    sum(case when is_positive = 1 and is_predicted_positive = 1 then 1 else 0 end) as n_tp,
    sum(case when is_positive = 0 and is_predicted_positive = 1 then 1 else 0 end) as n_fp,
    sum(case when is_positive = 1 and is_predicted_positive = 0 then 1 else 0 end) as n_fn,
    sum(case when is_positive = 0 and is_predicted_positive = 0 then 1 else 0 end) as n_tn,
    sum(coalesce(log_loss_term, 0)) as sum_log_loss,
    sum(coalesce(log_loss_term * log_loss_term, 0)) as sum_log_loss_sq,
    sum(case when is_labeled then brier_term else 0 end) as sum_brier,
    sum(case when is_labeled then brier_term * brier_term else 0 end) as sum_brier_sq,
    sum(case when is_positive = 1 then weight else 0 end) as w_pos,
    sum(case when is_positive = 1 and is_predicted_positive = 1 then weight else 0 end) as w_tp,
    sum(case when is_positive = 1 then weight * weight else 0 end) as w2_pos,
    sum(case when is_positive = 1 and is_predicted_positive = 1 then weight * weight else 0 end) as w2_tp
from terms
group by model_name, model_version, prediction_day, segment, segment_raw_value
