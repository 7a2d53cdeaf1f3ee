{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook=["{{ forget_stale_estimates() }}",
                  "{{ without_join_reordering() }}"],
        post_hook=["{{ with_join_reordering() }}",
                   "{{ refresh_realized_estimates('clear') }}",
                   "{{ refresh_realized_estimates('fill') }}",
                   "{{ refresh_realized_estimates('consumed') }}"],
    )
}}

{#- Binary models: the performance each window of marts.performance would show once its
    labels are in, estimated from its scores alone (confidence-based performance
    estimation, as NannyML's CBPE): the scores are calibrated on the labeled reference
    period, and each prediction counts as a draw with its calibrated probability of
    being positive (macros/estimated_performance.sql).

    Same windows, versions and segments as marts.performance (macros/window_days.sql),
    from the window that ends on the reference's last day on: all are calibrated on the
    whole reference (windows inside it are its own data, and one calibration per
    reference day would multiply the night's rows by them). The estimate is marked unreliable where
    the scores left what the reference calibrated. realized_value is marts.performance's
    value once no more labels can count for the window (label_delay_days after its end).

    An estimate depends on its days' predictions and the calibration only: a window of
    the range is estimated again when one of its days was counted again
    (int_estimated_days), and otherwise keeps its estimate while the post-hooks bring its
    realized value, label coverage and reference value up to date
    (macros/estimated_days.sql). -#}
-- depends_on: {{ ref('stg_config__windows') }}
{%- set window_groups = ['model_name', 'version_group', 'window_end', 'window_days', 'segment', 'segment_value'] %}
{%- set reference_groups = ['model_name', 'calibration_slice', 'segment', 'segment_value'] %}

-- Windows from the reference's last day on, each calibrated on the whole reference,
-- that the table does not hold (the pre-hook dropped those to estimate again).
with window_ends as (
    select window_ends.*
    from {{ ref('int_window_ends') }} as window_ends
    inner join {{ ref('stg_config__models') }} as models
        on models.model_name = window_ends.model_name
    where window_ends.window_end >= models.reference_end
    {%- if is_incremental() %}
        and not exists (
            select 1 from {{ this }} as stored
            where {{ same_values('stored', 'window_ends', ['model_name', 'window_end', 'window_days']) }}
        )
    {%- endif %}
),

{{ window_day_relations() }},

models as (
    select * from {{ ref('stg_config__models') }}
    where task = 'binary_classification'
),

calibration as (
    select * from {{ ref('int_binary_calibration') }}
),

estimated_days as (
    select * from {{ ref('int_estimated_days') }}
),

window_rows as (
    {{ window_day_rows('estimated_days', slice='calibration_slice') }}
),

window_bins as (
    select
        {{ window_groups | join(', ') }},
        calibration_slice,
        position,
        sum(n_predictions) as n_predictions,
        sum(n_outside) as n_outside,
        sum(n_unreferenced) as n_unreferenced
    from window_rows
    group by {{ window_groups | join(', ') }}, calibration_slice, position
),

reference_rows as (
    {{ reference_day_rows('estimated_days', slice='calibration_slice') }}
),

reference_bins as (
    select
        {{ reference_groups | join(', ') }},
        position,
        sum(n_predictions) as n_predictions,
        sum(n_outside) as n_outside,
        sum(n_unreferenced) as n_unreferenced
    from reference_rows
    group by {{ reference_groups | join(', ') }}, position
),

window_estimates as (
    select * from {{ estimated_binary_metrics('window_bins', window_groups + ['calibration_slice']) }}
),

reference_estimates as (
    select * from {{ estimated_binary_metrics('reference_bins', reference_groups) }}
),

judged as (
    select
        window_estimates.*,
        models.min_labeled_rows,
        models.label_delay_days,
        window_estimates.n_outside * {{ double_literal('1.0') }} / window_estimates.n_predictions as share_outside_reference,
        case
            when window_estimates.slice_labeled is null or window_estimates.slice_labeled < models.min_labeled_rows
                then 'the reference has ' || cast(coalesce(window_estimates.slice_labeled, 0) as {{ dbt.type_string() }})
                    || ' labeled predictions to calibrate on, fewer than min_labeled_rows ('
                    || cast(models.min_labeled_rows as {{ dbt.type_string() }}) || ')'
            when window_estimates.n_unreferenced > {{ estimate_max_share_unreferenced() }} * window_estimates.n_predictions
                then 'more than {{ (estimate_max_share_unreferenced() | float * 100) | int }}% of the predictions in the window come from model versions that did not serve in the reference period: set a reference period for the version now serving'
            when window_estimates.n_outside > {{ estimate_max_share_outside() }} * window_estimates.n_predictions
                then 'more than {{ (estimate_max_share_outside() | float * 100) | int }}% of the scores in the window lie outside the range the reference calibrated'
        end as unreliable_reason
    from window_estimates
    inner join models on models.model_name = window_estimates.model_name
    where window_estimates.n_predictions >= models.min_labeled_rows
)

select
    judged.model_name,
    judged.version_group as model_version,
    judged.window_days,
    judged.window_end,
    judged.segment,
    judged.segment_value,
    judged.metric,
    judged.estimated_value,
    judged.ci_low,
    judged.ci_high,
    case when {{ add_days('judged.label_delay_days', 'judged.window_end') }} <= {{ run_date() }}
        then performance.value end as realized_value,
    performance.label_coverage,
    judged.n_predictions,
    judged.unreliable_reason is null as is_reliable,
    judged.unreliable_reason,
    judged.share_outside_reference,
    judged.score_psi,
    judged.slice_labeled as calibration_labeled,
    reference_estimates.estimated_value as reference_estimated_value,
    performance.reference_value
from judged
left join (
    select * from {{ ref('performance') }}
    where window_end between {{ first_window_end() }} and {{ run_date() }}
) as performance
    on performance.model_name = judged.model_name
    and performance.model_version = judged.version_group
    and performance.window_days = judged.window_days
    and performance.window_end = judged.window_end
    and performance.segment = judged.segment
    and performance.segment_value = judged.segment_value
    and performance.metric = judged.metric
left join reference_estimates
    on reference_estimates.model_name = judged.model_name
    and reference_estimates.calibration_slice = judged.calibration_slice
    and reference_estimates.segment = judged.segment
    and reference_estimates.segment_value = judged.segment_value
    and reference_estimates.metric = judged.metric
