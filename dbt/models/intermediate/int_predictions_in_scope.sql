{#- Predictions this invocation reads: known by the run date (their partition has
    landed), of a configured model, and either inside a window it recomputes or inside
    the model's reference period. -#}
{%- set max_window = [1] -%}
{%- for name, m in var('models').items() -%}{%- do max_window.append(m.windows | max) -%}{%- endfor %}

with predictions as (
    select * from {{ ref('stg_raw__predictions') }}
),

models as (
    select * from {{ ref('stg_config__models') }}
)

select
    predictions.*,
    models.task,
    models.positive_label,
    models.decision_threshold,
    models.label_delay_days,
    models.reference_start,
    models.reference_end,
    models.min_labeled_rows,
    -- The model's decision: its predicted label where it gave one, else score >= threshold.
    case
        when predictions.predicted_label is not null
            then case when predictions.predicted_label = models.positive_label then 1 else 0 end
        when predictions.score >= models.decision_threshold then 1
        else 0
    end as is_predicted_positive
from predictions
inner join models
    on predictions.model_name = models.model_name
where predictions._partition_date <= {{ run_date() }}
    and predictions.prediction_day <= {{ run_date() }}
    and (
        {{ prediction_day_read('predictions.model_name', 'predictions.prediction_day', max_window | max) }}
        or predictions.prediction_day between models.reference_start and models.reference_end
    )
