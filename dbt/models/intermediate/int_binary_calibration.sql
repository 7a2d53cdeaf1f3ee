{{
    config(
        materialized=('table' if target.type == 'spark' else 'incremental'),
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook="{{ forget_stale_calibrations() }}",
    )
}}

{#- Binary models: the calibration of their scores on the reference period, for
    marts.performance_estimated (macros/estimated_performance.sql). Per model, on its
    whole reference period (calibration_slice: its last day), the reference's labeled predictions pooled into calibration bins of about
    equal mass on each side of the decision, with the isotonic regression's calibrated
    probability of each. A table, so that analysts can read the calibration curve; it
    holds the slices of the last run.

    A model's calibration is computed again only when its inputs changed
    (macros/estimated_days.sql, calibration_inputs: the reference's partitions, the labels
    that can reach them, the configuration and this file), which after the reference's
    label horizon is never: computing it joins the horizon's labels. -#}
{%- set to_calibrate = calibrations_to_compute() %}
{%- if is_incremental() and not to_calibrate %}

-- Every calibration is current.
select * from {{ this }} where 1 = 0
{%- else %}

with window_ends as (
    select * from {{ ref('int_window_ends') }}
),

models as (
    select * from {{ ref('stg_config__models') }}
    where task = 'binary_classification'
        {%- if to_calibrate %}
        and model_name in ({% for name in to_calibrate %}{{ sql_literal(name) }}{{ ', ' if not loop.last }}{% endfor %})
        {%- else %}
        and 1 = 0
        {%- endif %}
),

-- The whole reference, once the run has a window that ends on or after its last day
-- (marts.performance_estimated estimates those windows).
reference_slices as (
    select distinct window_ends.model_name, window_ends.reference_start, window_ends.reference_until
    from window_ends
    inner join models on models.model_name = window_ends.model_name
    where window_ends.reference_until = models.reference_end
),

labeled as (
    select
        segmented.model_name,
        segmented.prediction_day,
        segmented.is_predicted_positive,
        segmented.is_positive,
        {{ fine_score_bin('segmented.score') }} as fine_bin
    from {{ ref('int_predictions_segmented') }} as segmented
    inner join models on models.model_name = segmented.model_name
    where segmented.segment = '__all__'
        and segmented.is_labeled
        and segmented.prediction_day between models.reference_start and models.reference_end
),

-- The reference's labeled predictions per fine score bin, day by day, then per slice.
reference_fine_days as (
    select model_name, prediction_day, is_predicted_positive, fine_bin, count(*) as n_labeled, sum(is_positive) as n_pos
    from labeled
    group by model_name, prediction_day, is_predicted_positive, fine_bin
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
        ordered_bins.n_pos,
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
)

select calibration.*, inputs.inputs_fingerprint
from calibration
inner join ({{ calibration_inputs() }}) as inputs
    on inputs.model_name = calibration.model_name
    and inputs.calibration_slice = calibration.calibration_slice
{%- endif %}
