{#- No two rows share the values of these columns (the grain of the table).

    With partition_column, only the keys of the partitions dated from the first day this
    invocation was asked about (a night: its own date; a backfill: its first day) are
    looked up, each against the whole table: keys loaded earlier were checked on their own
    nights, and a night's test must not grow with history (raw.predictions keeps every
    day). A partition that lands late is checked at ingest, where a key delivered before
    is quarantined as a duplicate (contracts.mark_duplicates). -#}
{% test unique_combination_of_columns(model, combination_of_columns, partition_column=none) %}
select {{ combination_of_columns | join(', ') }}, count(*) as n_rows
from {{ model }} as checked
{%- if partition_column %}
where exists (
    select 1
    from {{ model }} as recent
    where recent.{{ partition_column }} >= {{ first_day_asked() }}
    {%- for column in combination_of_columns %}
        and recent.{{ column }} = checked.{{ column }}
    {%- endfor %}
)
{%- endif %}
group by {{ combination_of_columns | join(', ') }}
having count(*) > 1
{% endtest %}
