{#- The daily rows of `days` (one row per model, version, prediction day, segment and
    raw segment value) copied into each window and each reference slice that holds
    their day, with the segment bucket the window gives their raw value.

    The calling model defines window_ends (int_window_ends, or the part of it it measures)
    and then the relations of window_day_relations(). Used by marts/performance.sql and marts/performance_estimated.sql,
    so that both measure the same windows, versions and segments. -#}

{#- The relations window_day_rows and reference_day_rows read beside window_ends, as CTEs
    for the calling model's with-clause. -#}
{% macro window_day_relations() -%}
buckets as (
    select * from {{ ref('int_segment_buckets') }}
),

reference_slices as (
    select distinct model_name, reference_start, reference_until
    from window_ends
    where reference_until is not null
),

-- The daily aggregates are per version: each version's rows count for the version
-- itself (NULL here: its own name) and for all versions together ('__all__').
version_slots as (
    select cast(null as {{ dbt.type_string() }}) as version_group
    union all
    select cast('__all__' as {{ dbt.type_string() }}) as version_group
)
{%- endmacro %}

{#- A segment value's bucket for a basis period: its own name among the top values, else
    '__other__'; '__all__' stays itself. -#}
{% macro _bucketed_segment_value() -%}
    case when days.segment = '__all__' then '__all__' else coalesce(buckets.segment_value, '__other__') end
{%- endmacro %}

{% macro _bucket_join(basis_start, basis_end) -%}
    left join buckets
        on buckets.model_name = days.model_name
        and buckets.segment_basis_start = {{ basis_start }}
        and buckets.segment_basis_end = {{ basis_end }}
        and buckets.segment = days.segment
        and buckets.segment_raw_value = days.segment_raw_value
{%- endmacro %}

{#- With `slice`, a column of `days` naming the reference slice a row was measured
    against: a row joins only the windows that compare with that slice. -#}
{% macro window_day_rows(days, slice=none) -%}
    select
        window_ends.window_end,
        window_ends.window_days,
        {{ _bucketed_segment_value() }} as segment_value,
        coalesce(version_slots.version_group, days.model_version) as version_group,
        version_slots.version_group as version_slot,
        window_ends.segment_basis_start,
        window_ends.segment_basis_end,
        days.*
    from {{ days }} as days
    cross join version_slots
    inner join window_ends
        on window_ends.model_name = days.model_name
        and days.prediction_day between window_ends.window_start and window_ends.window_end
        {%- if slice %}
        and days.{{ slice }} = window_ends.reference_until
        {%- endif %}
    {{ _bucket_join('window_ends.segment_basis_start', 'window_ends.segment_basis_end') }}
{%- endmacro %}

{#- The reference slices' rows: all versions together, each slice bucketed as the
    windows that compare with it. -#}
{% macro reference_day_rows(days, slice=none) -%}
    select
        reference_slices.reference_until,
        {{ _bucketed_segment_value() }} as segment_value,
        days.*
    from {{ days }} as days
    inner join reference_slices
        on reference_slices.model_name = days.model_name
        and days.prediction_day between reference_slices.reference_start and reference_slices.reference_until
        {%- if slice %}
        and days.{{ slice }} = reference_slices.reference_until
        {%- endif %}
    {{ _bucket_join('reference_slices.reference_start', 'reference_slices.reference_until') }}
{%- endmacro %}
