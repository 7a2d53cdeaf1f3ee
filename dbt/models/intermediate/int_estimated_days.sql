{{
    config(
        materialized=('table' if target.type == 'spark' else 'incremental'),
        incremental_strategy='append',
        pre_hook="{{ forget_stale_estimated_days() }}",
    )
}}

{#- Binary models: per version, prediction day, segment and raw segment value, the
    predictions in each calibration bin (macros/estimated_days.sql), the day rows that
    marts.performance_estimated sums into windows.

    Nothing here depends on labels but the calibration, so a day is counted once and kept
    while its inputs are the same: its predictions partition (ops.ingest_partitions'
    fingerprint), the calibration and the reference's versions, and the model's
    configuration (inputs_fingerprint). A night then counts only its new partition (and
    any late or changed one, or all of them when the calibration or the configuration
    changed). Counted days stay pending until marts.performance_estimated has estimated
    the windows that hold them (its post-hook clears the flag), so that a night that
    fails between the two models still re-estimates them on its rerun. Spark computes the
    whole table on every run, every day pending. -#}

with inputs as (
    {{ estimated_day_inputs() }}
),

to_count as (
    select inputs.*
    from inputs
    {%- if is_incremental() %}
    -- Stale rows were deleted by the pre-hook: a day with rows is current.
    where not exists (
        select 1 from {{ this }} as stored
        where {{ same_values('stored', 'inputs', ['model_name', 'prediction_day']) }}
    )
    {%- endif %}
),

binary_predictions as (
    select in_scope.*
    from {{ ref('int_predictions_in_scope') }} as in_scope
    inner join to_count
        on to_count.model_name = in_scope.model_name
        -- The same day: a partition holds its own day's predictions (ingest enforces it),
        -- and the partition column lets the scan skip the others.
        and to_count.prediction_day = in_scope._partition_date
        and to_count.prediction_day = in_scope.prediction_day
),

segmented as (
    {{ segment_rows('binary_predictions') }}
),

{{ estimated_day_bin_map() }},

reference_versions as (
    {{ estimated_day_reference_versions() }}
)

select
    segmented.model_name,
    segmented.version_group as model_version,
    segmented.prediction_day,
    segmented.segment,
    segmented.segment_raw_value,
    to_count.calibration_slice,
    bin_map.position,
    count(*) as n_predictions,
    sum(case when bin_map.outside_reference then 1 else 0 end) as n_outside,
    sum(case when reference_versions.model_version is null then 1 else 0 end) as n_unreferenced,
    to_count.inputs_fingerprint,
    {{ run_date() }} as counted_on,
    true as is_pending
from segmented
inner join to_count
    on to_count.model_name = segmented.model_name
    and to_count.prediction_day = segmented.prediction_day
inner join bin_map
    on bin_map.model_name = segmented.model_name
    and bin_map.calibration_slice = to_count.calibration_slice
    and bin_map.is_predicted_positive = segmented.is_predicted_positive
    and bin_map.fine_bin = {{ fine_score_bin('segmented.score') }}
left join reference_versions
    on reference_versions.model_name = segmented.model_name
    and reference_versions.model_version = segmented.model_version
group by segmented.model_name, segmented.version_group, segmented.prediction_day, segmented.segment,
    segmented.segment_raw_value, to_count.calibration_slice, bin_map.position, to_count.inputs_fingerprint
