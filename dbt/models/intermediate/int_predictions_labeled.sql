{#- Each prediction with the label known for it: the latest label (a later labeled_at
    corrects an earlier one) among those that arrived by the run date and within the
    model's label_delay_days of the prediction's day. Labels that arrived before their
    prediction join as soon as it is there. The horizon makes every figure a function
    of the data and the dates alone, so a backfill equals the nightly runs it replaces. -#}
{%- set models = var('models') -%}
{%- set weighted = [] -%}
{%- for name, m in models.items() if m.weight_column -%}{%- do weighted.append((name, m.weight_column)) -%}{%- endfor %}

with predictions as (
    select * from {{ ref('int_predictions_in_scope') }}
),

labels as (
    select * from {{ ref('stg_raw__labels') }}
    where _partition_date <= {{ run_date() }}
),

-- One row per prediction with a label in its horizon: the latest label (ties: the
-- greatest label), its weight, and when the first one arrived.
effective_labels as (
    select
        predictions.model_name,
        predictions.prediction_id,
        {{ value_at_max('labels.label', ['labels.labeled_at', 'labels.label']) }} as label,
        -- The weight of that label; the greatest weight on a full tie, so that the answer
        -- does not depend on the order rows arrive in (marts.performance runs on every core).
        {{ value_at_max('labels.label_weight', ['labels.labeled_at', 'labels.label', 'labels.label_weight']) }} as label_weight,
        max(labels.labeled_at) as labeled_at,
        min(labels.labeled_at) as first_labeled_at
    from predictions
    inner join labels
        on labels.model_name = predictions.model_name
        and labels.prediction_id = predictions.prediction_id
    where labels.labeled_day <= least(
        {{ run_date() }},
        {{ add_days('predictions.label_delay_days', 'predictions.prediction_day') }}
    )
    group by predictions.model_name, predictions.prediction_id
),

-- Per model, the bound exponent of every outcome weight delivered by the run date
-- (labels' weights, the configured weight column): the fixed-point scale of the weight
-- sums (macros/exact_sums.sql). Read from the source tables, a superset of the night's
-- rows, so that the rows need not be read twice.
delivered_weights as (
    select model_name, max(abs(label_weight)) as max_abs
    from {{ ref('stg_raw__labels') }}
    where _partition_date <= {{ run_date() }}
    group by model_name
    {%- for name, column in weighted %}
    union all
    select model_name, max(abs(cast({{ adapter.quote(column) }} as {{ type_double() }}))) as max_abs
    from {{ ref('stg_raw__predictions') }}
    where model_name = {{ sql_literal(name) }} and _partition_date <= {{ run_date() }}
    group by model_name
    {%- endfor %}
),

weight_bounds as (
    select model_name, {{ bound_exponent('max(max_abs)') }} as outcome_weight_bound
    from delivered_weights
    group by model_name
)

select
    predictions.*,
    effective_labels.label,
    effective_labels.labeled_at,
    effective_labels.first_labeled_at,
    effective_labels.label is not null as is_labeled,
    {%- if weighted %}
    case predictions.model_name
        {%- for name, column in weighted %}
        when {{ sql_literal(name) }} then cast(predictions.{{ adapter.quote(column) }} as {{ type_double() }})
        {%- endfor %}
        else effective_labels.label_weight
    end as outcome_weight,
    {%- else %}
    effective_labels.label_weight as outcome_weight,
    {%- endif %}
    case
        when effective_labels.label is null then null
        when effective_labels.label = predictions.positive_label then 1
        when {{ dbt.safe_cast('effective_labels.label', type_double()) }}
            = {{ dbt.safe_cast('predictions.positive_label', type_double()) }} then 1
        else 0
    end as is_positive,
    {{ dbt.safe_cast('effective_labels.label', type_double()) }} as label_value,
    coalesce(weight_bounds.outcome_weight_bound, 0) as outcome_weight_bound
from predictions
left join effective_labels
    on effective_labels.model_name = predictions.model_name
    and effective_labels.prediction_id = predictions.prediction_id
left join weight_bounds
    on weight_bounds.model_name = predictions.model_name
