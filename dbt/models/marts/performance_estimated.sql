{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ replace_range('window_end', first_window_end(), run_date()) }}",
    )
}}

{#- Binary models: the performance each window of marts.performance would show once its
    labels are in, estimated from its scores alone (confidence-based performance
    estimation, as NannyML's CBPE): the scores are calibrated on the labeled reference
    period, and each prediction counts as a draw with its calibrated probability of
    being positive (macros/estimated_performance.sql).

    Same windows, versions and segments as marts.performance (macros/window_days.sql),
    and the same reference slice: a window ending inside the reference period is
    calibrated on the reference up to its end. The estimate is marked unreliable where
    the scores left what the reference calibrated. realized_value is marts.performance's
    value once no more labels can count for the window (label_delay_days after its end). -#}
{%- set window_groups = ['model_name', 'version_group', 'window_end', 'window_days', 'segment', 'segment_value'] %}
{%- set reference_groups = ['model_name', 'calibration_slice', 'segment', 'segment_value'] %}

with window_ends as (
    select * from {{ ref('int_window_ends') }}
),

buckets as (
    select * from {{ ref('int_segment_buckets') }}
),

models as (
    select * from {{ ref('stg_config__models') }}
    where task = 'binary_classification'
),

reference_slices as (
    select distinct model_name, reference_start, reference_until
    from window_ends
    where reference_until is not null
),

version_slots as (
    select cast(null as {{ dbt.type_string() }}) as version_group
    union all
    select cast('__all__' as {{ dbt.type_string() }}) as version_group
),

scored as (
    select
        segmented.model_name,
        segmented.version_group as model_version,
        segmented.prediction_day,
        segmented.segment,
        segmented.segment_raw_value,
        segmented.is_predicted_positive,
        segmented.is_labeled,
        segmented.is_positive,
        {{ fine_score_bin('segmented.score') }} as fine_bin
    from {{ ref('int_predictions_segmented') }} as segmented
    inner join models on models.model_name = segmented.model_name
),

-- ------------------------------------------------------------------ calibration

-- The reference's labeled predictions per fine score bin, day by day, then per slice.
reference_fine_days as (
    select
        scored.model_name,
        scored.prediction_day,
        scored.is_predicted_positive,
        scored.fine_bin,
        count(*) as n_labeled,
        sum(scored.is_positive) as n_pos
    from scored
    inner join models on models.model_name = scored.model_name
    where scored.segment = '__all__'
        and scored.is_labeled
        and scored.prediction_day between models.reference_start and models.reference_end
    group by scored.model_name, scored.prediction_day, scored.is_predicted_positive, scored.fine_bin
),

reference_fine as (
    select
        days.model_name,
        slices.reference_until as calibration_slice,
        days.is_predicted_positive,
        days.fine_bin,
        sum(days.n_labeled) as n_labeled,
        sum(days.n_pos) as n_pos
    from reference_fine_days as days
    inner join reference_slices as slices
        on slices.model_name = days.model_name
        and days.prediction_day between slices.reference_start and slices.reference_until
    group by days.model_name, slices.reference_until, days.is_predicted_positive, days.fine_bin
),

-- Consecutive fine bins pooled into calibration bins of about equal labeled mass, on
-- each side of the decision.
pooled as (
    select
        reference_fine.*,
        floor({{ calibration_bins_per_side() }} * (
            sum(n_labeled) over (partition by model_name, calibration_slice, is_predicted_positive order by fine_bin
                                 rows between unbounded preceding and current row) - n_labeled)
            * {{ double_literal('1.0') }}
            / sum(n_labeled) over (partition by model_name, calibration_slice, is_predicted_positive)) as side_bin
    from reference_fine
),

calibration_bins as (
    select
        model_name,
        calibration_slice,
        is_predicted_positive,
        side_bin,
        min(fine_bin) as first_fine_bin,
        max(fine_bin) as last_fine_bin,
        sum(n_labeled) as n_labeled,
        sum(n_pos) as n_pos
    from pooled
    group by model_name, calibration_slice, is_predicted_positive, side_bin
),

ordered_bins as (
    select
        calibration_bins.*,
        row_number() over (partition by model_name, calibration_slice
                           order by first_fine_bin, is_predicted_positive) as position,
        sum(n_labeled) over (partition by model_name, calibration_slice order by first_fine_bin, is_predicted_positive
                             rows between unbounded preceding and current row) as labeled_through,
        sum(n_pos) over (partition by model_name, calibration_slice order by first_fine_bin, is_predicted_positive
                         rows between unbounded preceding and current row) as positives_through,
        sum(n_labeled) over (partition by model_name, calibration_slice) as slice_labeled
    from calibration_bins
),

-- Isotonic regression of the positive rate on the bins, by its min-max formula: a bin's
-- fitted value is the largest, over blocks starting at or before it, of the smallest
-- mean of such a block ending at or after it (weighted by the bins' labeled rows).
block_means as (
    select
        block_start.model_name,
        block_start.calibration_slice,
        block_start.position as first_position,
        block_end.position as last_position,
        (block_end.positives_through - block_start.positives_through + block_start.n_pos) * {{ double_literal('1.0') }}
            / (block_end.labeled_through - block_start.labeled_through + block_start.n_labeled) as block_mean
    from ordered_bins as block_start
    inner join ordered_bins as block_end
        on block_end.model_name = block_start.model_name
        and block_end.calibration_slice = block_start.calibration_slice
        and block_end.position >= block_start.position
),

lowest_ahead as (
    select
        model_name,
        calibration_slice,
        last_position,
        min(block_mean) over (partition by model_name, calibration_slice, first_position order by last_position desc
                              rows between unbounded preceding and current row) as lowest_mean
    from block_means
),

fitted as (
    select model_name, calibration_slice, last_position as position, max(lowest_mean) as probability
    from lowest_ahead
    group by model_name, calibration_slice, last_position
),

calibrated_bins as (
    select
        ordered_bins.model_name,
        ordered_bins.calibration_slice,
        ordered_bins.position,
        ordered_bins.is_predicted_positive,
        ordered_bins.first_fine_bin,
        ordered_bins.last_fine_bin,
        ordered_bins.slice_labeled,
        ordered_bins.n_labeled,
        fitted.probability,
        -- Ten groups of consecutive bins, a tenth of the reference each: the score PSI's
        -- bins (few enough that a window of a few hundred predictions measures it).
        floor(10 * (ordered_bins.labeled_through - ordered_bins.n_labeled) * {{ double_literal('1.0') }}
              / ordered_bins.slice_labeled) as psi_group,
        min(ordered_bins.first_fine_bin) over (partition by ordered_bins.model_name, ordered_bins.calibration_slice,
            ordered_bins.is_predicted_positive) as side_first_fine_bin,
        max(ordered_bins.last_fine_bin) over (partition by ordered_bins.model_name, ordered_bins.calibration_slice,
            ordered_bins.is_predicted_positive) as side_last_fine_bin
    from ordered_bins
    inner join fitted
        on fitted.model_name = ordered_bins.model_name
        and fitted.calibration_slice = ordered_bins.calibration_slice
        and fitted.position = ordered_bins.position
),

psi_group_shares as (
    select
        model_name,
        calibration_slice,
        psi_group,
        sum(n_labeled) * {{ double_literal('1.0') }} / min(slice_labeled) as psi_group_share
    from calibrated_bins
    group by model_name, calibration_slice, psi_group
),

-- What the groups would add to a window's score PSI if it left them all empty.
psi_floors as (
    select model_name, calibration_slice, sum(psi_group_share * ln(psi_group_share / 0.0001)) as psi_floor
    from psi_group_shares
    group by model_name, calibration_slice
),

calibration as (
    select calibrated_bins.*, psi_group_shares.psi_group_share, psi_floors.psi_floor
    from calibrated_bins
    inner join psi_group_shares
        on psi_group_shares.model_name = calibrated_bins.model_name
        and psi_group_shares.calibration_slice = calibrated_bins.calibration_slice
        and psi_group_shares.psi_group = calibrated_bins.psi_group
    inner join psi_floors
        on psi_floors.model_name = calibrated_bins.model_name
        and psi_floors.calibration_slice = calibrated_bins.calibration_slice
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

bin_map as (
    select
        bin_ranges.model_name,
        bin_ranges.calibration_slice,
        bin_ranges.is_predicted_positive,
        fine_bins.fine_bin,
        bin_ranges.position,
        fine_bins.fine_bin < bin_ranges.side_first_fine_bin
            or fine_bins.fine_bin > bin_ranges.side_last_fine_bin as outside_reference
    from bin_ranges
    inner join fine_bins
        on fine_bins.fine_bin between bin_ranges.range_start and bin_ranges.range_end
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
        sum(case when bin_map.outside_reference then 1 else 0 end) as n_outside
    from scored
    inner join slice_spans
        on slice_spans.model_name = scored.model_name
        and scored.prediction_day between slice_spans.span_start and slice_spans.span_end
    left join bin_map
        on bin_map.model_name = scored.model_name
        and bin_map.calibration_slice = slice_spans.calibration_slice
        and bin_map.is_predicted_positive = scored.is_predicted_positive
        and bin_map.fine_bin = scored.fine_bin
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
        sum(n_outside) as n_outside
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
        sum(n_outside) as n_outside
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
            when window_estimates.n_outside > {{ estimate_max_share_outside() }} * window_estimates.n_predictions
                then 'more than {{ (estimate_max_share_outside() | float * 100) | int }}% of the window''s scores lie outside the range the reference calibrated'
            when window_estimates.score_psi > {{ estimate_max_score_psi() }}
                then 'the window''s scores moved away from the reference''s (PSI over the calibration bins above {{ estimate_max_score_psi() }})'
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
