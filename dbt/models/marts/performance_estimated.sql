{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook=["{{ replace_range('window_end', first_window_end(), run_date()) }}",
                  "{{ without_join_reordering() }}"],
        post_hook="{{ with_join_reordering() }}",
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
    value once no more labels can count for the window (label_delay_days after its end). -#}
{%- set window_groups = ['model_name', 'version_group', 'window_end', 'window_days', 'segment', 'segment_value'] %}
{%- set reference_groups = ['model_name', 'calibration_slice', 'segment', 'segment_value'] %}

-- Windows from the reference's last day on: each is calibrated on the whole reference.
with window_ends as (
    select window_ends.*
    from {{ ref('int_window_ends') }} as window_ends
    inner join {{ ref('stg_config__models') }} as models
        on models.model_name = window_ends.model_name
    where window_ends.window_end >= models.reference_end
),

{{ window_day_relations() }},

models as (
    select * from {{ ref('stg_config__models') }}
    where task = 'binary_classification'
),

-- The predictions of the run, labeled or not: the estimate needs no label.
binary_predictions as (
    select in_scope.*
    from {{ ref('int_predictions_in_scope') }} as in_scope
    inner join models on models.model_name = in_scope.model_name
),

segmented as (
    {{ segment_rows('binary_predictions') }}
),

-- The versions the calibration saw.
reference_versions as (
    select distinct binary_predictions.model_name, binary_predictions.model_version
    from binary_predictions
    inner join models on models.model_name = binary_predictions.model_name
    where binary_predictions.prediction_day between models.reference_start and models.reference_end
),

scored as (
    select
        model_name,
        version_group as model_version,
        prediction_day,
        segment,
        segment_raw_value,
        is_predicted_positive,
        {{ fine_score_bin('score') }} as fine_bin
    from segmented
),

calibration as (
    select * from {{ ref('int_binary_calibration') }}
),

-- Every fine bin's calibration bin: the side's bin that starts at or below it (the
-- side's first bin below the reference's lowest score).
digits as (
    {%- for d in range(10) %}
    select {{ d }} as digit{{ ' union all' if not loop.last }}
    {%- endfor %}
),

fine_bins as (
    -- calibration_fine_bins() = 10^4
    select ones.digit + 10 * tens.digit + 100 * hundreds.digit + 1000 * thousands.digit as fine_bin
    from digits as ones
    cross join digits as tens
    cross join digits as hundreds
    cross join digits as thousands
),

bin_ranges as (
    select
        calibration.*,
        case when lag(first_fine_bin) over (partition by model_name, calibration_slice, is_predicted_positive
                                            order by first_fine_bin) is null
            then 0 else first_fine_bin end as range_start,
        coalesce(lead(first_fine_bin) over (partition by model_name, calibration_slice, is_predicted_positive
                                            order by first_fine_bin) - 1,
                 {{ calibration_fine_bins() }} - 1) as range_end
    from calibration
),

-- Every (side, fine bin) of each slice, with its calibration bin: NULL on a side the
-- reference has no labeled predictions on (the estimate then counts them as outside).
bin_map as (
    select
        slices.model_name,
        slices.calibration_slice,
        sides.is_predicted_positive,
        fine_bins.fine_bin,
        bin_ranges.position,
        bin_ranges.position is null
            or fine_bins.fine_bin < bin_ranges.side_first_fine_bin
            or fine_bins.fine_bin > bin_ranges.side_last_fine_bin as outside_reference
    from (select distinct model_name, calibration_slice from calibration) as slices
    cross join (select 0 as is_predicted_positive union all select 1 as is_predicted_positive) as sides
    cross join fine_bins
    left join bin_ranges
        on bin_ranges.model_name = slices.model_name
        and bin_ranges.calibration_slice = slices.calibration_slice
        and bin_ranges.is_predicted_positive = sides.is_predicted_positive
        and fine_bins.fine_bin between bin_ranges.range_start and bin_ranges.range_end
),

-- ------------------------------------------------------------------ the run's predictions

-- The days each slice measures: those of the windows that compare with it and its own
-- reference days (one span: they overlap).
slice_spans as (
    select
        model_name,
        reference_until as calibration_slice,
        least(min(window_start), min(reference_start)) as span_start,
        max(window_end) as span_end
    from window_ends
    where reference_until is not null
    group by model_name, reference_until
),

-- Per version, day, segment and raw value: the predictions in each calibration bin.
estimated_days as (
    select
        scored.model_name,
        scored.model_version,
        scored.prediction_day,
        scored.segment,
        scored.segment_raw_value,
        slice_spans.calibration_slice,
        bin_map.position,
        count(*) as n_predictions,
        sum(case when bin_map.outside_reference then 1 else 0 end) as n_outside,
        sum(case when reference_versions.model_version is null then 1 else 0 end) as n_unreferenced
    from scored
    inner join slice_spans
        on slice_spans.model_name = scored.model_name
        and scored.prediction_day between slice_spans.span_start and slice_spans.span_end
    inner join bin_map
        on bin_map.model_name = scored.model_name
        and bin_map.calibration_slice = slice_spans.calibration_slice
        and bin_map.is_predicted_positive = scored.is_predicted_positive
        and bin_map.fine_bin = scored.fine_bin
    left join reference_versions
        on reference_versions.model_name = scored.model_name
        and reference_versions.model_version = scored.model_version
    group by scored.model_name, scored.model_version, scored.prediction_day, scored.segment, scored.segment_raw_value,
        slice_spans.calibration_slice, bin_map.position
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
