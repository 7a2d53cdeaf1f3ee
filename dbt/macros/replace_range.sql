{#- Incremental marts keyed by day: before the new rows are appended, the rows of the
    days this invocation recomputes are deleted, so a rerun replaces and never
    duplicates. `where` narrows the delete to the rows the model owns (a mart can share
    its table with rows that mlwatch writes itself). Dispatched so that engines without
    DELETE can overwrite partitions. -#}
{% macro replace_range(column, start_expr, end_expr, where=none) -%}
    {{ return(adapter.dispatch('replace_range', 'mlwatch')(column, start_expr, end_expr, where)) }}
{%- endmacro %}

{% macro default__replace_range(column, start_expr, end_expr, where=none) -%}
    {%- if is_incremental() -%}
    delete from {{ this }} where {{ column }} between {{ start_expr }} and {{ end_expr }}
    {%- if where %} and ({{ where }}){% endif %}
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}
