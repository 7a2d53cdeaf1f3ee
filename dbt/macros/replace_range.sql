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

{#- marts.performance's pre-hook: drop the window ends this invocation recomputes
    (macros/run_range.sql: the run range, or a backtest night's ends). -#}
{% macro replace_window_ends() -%}
    {%- if backtest_night() -%}
    {%- if target.type == 'spark' -%}
    {{ exceptions.raise_compiler_error("backtest nights (mlwatch backfill) run on DuckDB only") }}
    {%- elif is_incremental() -%}
    delete from {{ this }} where {{ window_end_recomputed('model_name', 'window_end') }}
    {%- else -%}
    select 1
    {%- endif -%}
    {%- else -%}
    {{ replace_range('window_end', first_window_end(), run_date()) }}
    {%- endif -%}
{%- endmacro %}
