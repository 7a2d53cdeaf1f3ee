{#- The stored day rows of the estimate (models/intermediate/int_estimated_days.sql) and
    how marts.performance_estimated keeps the windows it estimated on earlier nights.
    The relations read here are tables and views, never ephemeral models, because the
    hooks read them too. -#}

{#- Part of every fingerprint of the stored calibration and day rows (beside the models'
    own SQL): change it with any change to the SQL of the estimate (these macros,
    estimated_performance.sql, marts.performance_estimated), so that warehouses built by
    an earlier mlwatch count and estimate again instead of keeping the old rows. -#}
{% macro estimate_cache_version() -%}2026-12-07.4{%- endmacro %}

{#- The names of the configured binary models (the only ones estimated). -#}
{% macro _binary_model_names() -%}
    {%- set names = [] -%}
    {%- for name, m in var('models').items() if m.task == 'binary_classification' -%}{%- do names.append(name) -%}{%- endfor -%}
    {{- return(names) -}}
{%- endmacro %}

{#- Per binary model: its longest window and the part of a stored row's fingerprint that no
    partition gives, a hash of its configuration, the calling model's SQL and
    estimate_cache_version(). Empty (typed) without binary models. -#}
{% macro binary_model_fingerprints() -%}
    {%- set names = _binary_model_names() -%}
    {%- if not names %}
    select
        cast(null as {{ dbt.type_string() }}) as model_name,
        cast(null as {{ dbt.type_int() }}) as longest_window,
        cast(null as {{ dbt.type_string() }}) as config_fingerprint
    where 1 = 0
    {%- endif %}
    {%- for name in names %}
    {%- set m = var('models')[name] %}
    select
        {{ sql_literal(name) }} as model_name,
        {{ m.windows | max }} as longest_window,
        {{ sql_literal(local_md5(tojson(m, sort_keys=True) ~ model.raw_code ~ estimate_cache_version())) }}
            as config_fingerprint
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
{%- endmacro %}

{#- A stored calibration is current when a row of calibration_inputs() has its key. -#}
{% macro calibration_key() -%}
    {{- return(['model_name', 'calibration_slice', 'inputs_fingerprint']) -}}
{%- endmacro %}

{#- The reference period's model versions per binary model (an estimate from versions that
    did not serve then is not trusted). -#}
{% macro estimated_day_reference_versions() -%}
    select distinct predictions.model_name, predictions.model_version
    from {{ ref('stg_raw__predictions') }} as predictions
    inner join {{ ref('stg_config__models') }} as models
        on models.model_name = predictions.model_name
    where models.task = 'binary_classification'
        and predictions._partition_date <= {{ run_date() }}
        and predictions.prediction_day <= {{ run_date() }}
        and predictions.prediction_day between models.reference_start and models.reference_end
{%- endmacro %}

{#- Per binary model and day the estimate reads tonight (its reference period, and the
    days of every window from the reference's end on that ends in this invocation's range),
    with a loaded predictions partition: the calibration slice and the fingerprint of
    everything the day's row depends on (the partition, the calibration's own inputs
    fingerprint, the reference's versions, the model's configuration, the SQL). -#}
{% macro estimated_day_inputs() -%}
    with configured as (
        {{ binary_model_fingerprints() }}
    ),

    spans as (
        select
            models.model_name,
            models.reference_start,
            models.reference_end as calibration_slice,
            {{ add_days('1 - configured.longest_window', 'greatest(models.reference_end, ' ~ first_window_end() ~ ')') }}
                as windows_start,
            configured.config_fingerprint
        from {{ ref('stg_config__models') }} as models
        inner join configured on configured.model_name = models.model_name
        where models.reference_end <= {{ run_date() }}
    ),

    -- A calibration is a function of its inputs: their fingerprint stands for it.
    calibrations as (
        select model_name, calibration_slice, max(inputs_fingerprint) as calibration_fingerprint
        from {{ ref('int_binary_calibration') }}
        group by model_name, calibration_slice
    ),

    reference_versions as (
        select
            model_name,
            {{ dbt.hash(ordered_listagg('model_version', "'|'", 'order by model_version')) }} as versions_fingerprint
        from ({{ estimated_day_reference_versions() }}) as versions
        group by model_name
    ),

    partitions as (
        select partition_date, fingerprint
        from {{ source('ops', 'ingest_partitions') }}
        where feed = 'predictions' and status = 'loaded' and partition_date <= {{ run_date() }}
    )

    select
        spans.model_name,
        partitions.partition_date as prediction_day,
        spans.calibration_slice,
        {{ dbt.hash("partitions.fingerprint || '/' || calibrations.calibration_fingerprint || '/' || "
                    "coalesce(reference_versions.versions_fingerprint, '') || '/' || spans.config_fingerprint") }}
            as inputs_fingerprint
    from spans
    inner join calibrations
        on calibrations.model_name = spans.model_name
        and calibrations.calibration_slice = spans.calibration_slice
    left join reference_versions
        on reference_versions.model_name = spans.model_name
    inner join partitions
        on partitions.partition_date between spans.reference_start and spans.calibration_slice
        or partitions.partition_date >= spans.windows_start
{%- endmacro %}

{#- Pre-hook of int_estimated_days: drop the stored rows of days whose inputs changed, or
    that tonight does not read (the table keeps the label horizon, not the history). -#}
{% macro forget_stale_estimated_days() -%}
    {%- if is_incremental() -%}
    delete from {{ this }} as stored
    where stored.prediction_day <= {{ run_date() }}
        and not exists (
            select 1 from ({{ estimated_day_inputs() }}) as inputs
            where {{ same_values('inputs', 'stored', ['model_name', 'prediction_day', 'inputs_fingerprint']) }}
        )
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- CTEs for the calling model's with-clause: `calibration` (int_binary_calibration) and
    `bin_map`, every (slice, side, fine bin) with its calibration bin: NULL on a side the
    reference has no labeled predictions on (the estimate then counts them as outside). -#}
{% macro estimated_day_bin_map() -%}
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
)
{%- endmacro %}

{#- Pre-hook of marts.performance_estimated: drop the windows of this invocation's range
    whose days were counted since they were estimated (int_estimated_days.is_pending; a
    pending reference day changes every window's reference), and windows no longer
    configured. The rest keep their estimate, and the post-hooks bring their realized
    side up to date. Spark has no DELETE: it replaces the whole range. -#}
{% macro forget_stale_estimates() -%}
    {{ return(adapter.dispatch('forget_stale_estimates', 'mlwatch')()) }}
{%- endmacro %}

{% macro default__forget_stale_estimates() -%}
    {%- if is_incremental() -%}
    delete from {{ this }} as stored
    where stored.window_end between {{ first_window_end() }} and {{ run_date() }}
        and (
            exists (
                select 1 from {{ ref('int_estimated_days') }} as days
                where days.is_pending
                    and days.model_name = stored.model_name
                    and (days.prediction_day <= days.calibration_slice
                         or days.prediction_day between {{ add_days('1 - stored.window_days', 'stored.window_end') }}
                                                    and stored.window_end)
            )
            or not exists (
                select 1 from {{ ref('stg_config__windows') }} as windows
                where windows.model_name = stored.model_name
                    and windows.window_days = stored.window_days
            )
        )
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{% macro spark__forget_stale_estimates() -%}
    {{ replace_range('window_end', first_window_end(), run_date()) }}
{%- endmacro %}

{#- Post-hooks of marts.performance_estimated (DuckDB): the realized side of every window
    of the range, estimated tonight or before, from tonight's marts.performance (cleared,
    then filled where marts.performance has the row); then the counted days are no longer
    pending. Spark rebuilt the range whole. -#}
{% macro refresh_realized_estimates(step) -%}
    {{ return(adapter.dispatch('refresh_realized_estimates', 'mlwatch')(step)) }}
{%- endmacro %}

{% macro default__refresh_realized_estimates(step) -%}
    {%- if step == 'consumed' -%}
    update {{ ref('int_estimated_days') }} set is_pending = false where is_pending
    {%- elif not is_incremental() -%}
    select 1
    {%- elif step == 'clear' -%}
    update {{ this }} as estimate
    set realized_value = null, label_coverage = null, reference_value = null
    where estimate.window_end between {{ first_window_end() }} and {{ run_date() }}
    {%- elif step == 'fill' -%}
    update {{ this }} as estimate
    set realized_value = case when {{ add_days('models.label_delay_days', 'estimate.window_end') }} <= {{ run_date() }}
                             then performance.value end,
        label_coverage = performance.label_coverage,
        reference_value = performance.reference_value
    from {{ ref('performance') }} as performance
    inner join {{ ref('stg_config__models') }} as models
        on models.model_name = performance.model_name
    where estimate.window_end between {{ first_window_end() }} and {{ run_date() }}
        and {{ same_values('performance', 'estimate', ['model_name', 'model_version', 'window_days', 'window_end',
                                                       'segment', 'segment_value', 'metric']) }}
    {%- endif -%}
{%- endmacro %}

{% macro spark__refresh_realized_estimates(step) -%}select 1{%- endmacro %}

{#- The calibration (int_binary_calibration) is kept while its inputs are unchanged, since
    computing it joins the horizon's labels: per binary model whose reference period has
    ended by the run date, a hash of the model's configuration, the calibration model's
    own SQL, and the fingerprints of the partitions it reads (the reference's predictions,
    and every labels partition up to the reference's end + label_delay_days: a label may
    arrive before its prediction), and estimate_cache_version(). Once the reference's
    labels are in, nothing changes night to night. -#}
{% macro calibration_inputs() -%}
    with configured as (
        {{ binary_model_fingerprints() }}
    ),

    reference_periods as (
        select
            models.model_name,
            models.reference_start,
            models.reference_end,
            {{ add_days('models.label_delay_days', 'models.reference_end') }} as labels_end,
            configured.config_fingerprint
        from {{ ref('stg_config__models') }} as models
        inner join configured on configured.model_name = models.model_name
        where models.reference_end <= {{ run_date() }}
    ),

    partitions as (
        select feed, partition_date, fingerprint
        from {{ source('ops', 'ingest_partitions') }}
        where status = 'loaded' and feed in ('predictions', 'labels') and partition_date <= {{ run_date() }}
    )

    select
        reference_periods.model_name,
        reference_periods.reference_end as calibration_slice,
        {{ dbt.hash("reference_periods.config_fingerprint || '/' || coalesce("
                    ~ ordered_listagg("partitions.feed || ' ' || cast(partitions.partition_date as " ~ dbt.type_string()
                                      ~ ") || ' ' || partitions.fingerprint", "','",
                                      'order by partitions.feed, partitions.partition_date')
                    ~ ", '')") }} as inputs_fingerprint
    from reference_periods
    left join partitions
        on (partitions.feed = 'predictions'
            and partitions.partition_date between reference_periods.reference_start and reference_periods.reference_end)
        or (partitions.feed = 'labels' and partitions.partition_date <= reference_periods.labels_end)
    group by reference_periods.model_name, reference_periods.reference_end, reference_periods.config_fingerprint
{%- endmacro %}

{#- The binary models whose calibration this invocation computes: those whose stored
    calibration's inputs changed (or that have none); every one while dbt parses, on the
    first build, on Spark, and on a table from before the fingerprint. -#}
{% macro calibrations_to_compute() -%}
    {%- if not execute or not is_incremental() or not _has_inputs_fingerprint() -%}
        {{- return(_binary_model_names()) -}}
    {%- endif -%}
    {%- set stale -%}
        select inputs.model_name
        from ({{ calibration_inputs() }}) as inputs
        where not exists (
            select 1 from {{ this }} as stored
            where {{ same_values('inputs', 'stored', calibration_key()) }}
        )
    {%- endset -%}
    {{- return(run_query(stale).columns[0].values() | list) -}}
{%- endmacro %}

{% macro _has_inputs_fingerprint() -%}
    {%- set columns = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list -%}
    {{- return('inputs_fingerprint' in columns) -}}
{%- endmacro %}

{#- Pre-hook of int_binary_calibration: drop the calibrations whose inputs changed, and
    those of models without one tonight. -#}
{% macro forget_stale_calibrations() -%}
    {%- if not is_incremental() -%}
    select 1
    {%- elif not _has_inputs_fingerprint() -%}
    delete from {{ this }}
    {%- else -%}
    delete from {{ this }} as stored
    where not exists (
        select 1 from ({{ calibration_inputs() }}) as inputs
        where {{ same_values('inputs', 'stored', calibration_key()) }}
    )
    {%- endif -%}
{%- endmacro %}
