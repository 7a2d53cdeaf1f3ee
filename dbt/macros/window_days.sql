{#- The daily rows of `days` (one row per model, version, prediction day, segment and
    raw segment value) copied into each window and each reference slice that holds
    their day, with the segment bucket the window gives their raw value.

    The calling model defines these relations: window_ends (int_window_ends), buckets
    (int_segment_buckets), version_slots (NULL: each version's own rows; '__all__': all
    versions together) and reference_slices (model_name, reference_start,
    reference_until). Used by marts/performance.sql and marts/performance_estimated.sql,
    so that both measure the same windows, versions and segments. -#}

{#- With `slice`, a column of `days` naming the reference slice a row was measured
    against: a row joins only the windows that compare with that slice. -#}
{% macro window_day_rows(days, slice=none) -%}
    select
        window_ends.window_end,
        window_ends.window_days,
        case when days.segment = '__all__' then '__all__' else coalesce(buckets.segment_value, '__other__') end
            as segment_value,
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
    left join buckets
        on buckets.model_name = days.model_name
        and buckets.segment_basis_start = window_ends.segment_basis_start
        and buckets.segment_basis_end = window_ends.segment_basis_end
        and buckets.segment = days.segment
        and buckets.segment_raw_value = days.segment_raw_value
{%- endmacro %}

{#- The reference slices' rows: all versions together, each slice bucketed as the
    windows that compare with it. -#}
{% macro reference_day_rows(days, slice=none) -%}
    select
        reference_slices.reference_until,
        case when days.segment = '__all__' then '__all__' else coalesce(buckets.segment_value, '__other__') end
            as segment_value,
        days.*
    from {{ days }} as days
    inner join reference_slices
        on reference_slices.model_name = days.model_name
        and days.prediction_day between reference_slices.reference_start and reference_slices.reference_until
        {%- if slice %}
        and days.{{ slice }} = reference_slices.reference_until
        {%- endif %}
    left join buckets
        on buckets.model_name = days.model_name
        and buckets.segment_basis_start = reference_slices.reference_start
        and buckets.segment_basis_end = reference_slices.reference_until
        and buckets.segment = days.segment
        and buckets.segment_raw_value = days.segment_raw_value
{%- endmacro %}
