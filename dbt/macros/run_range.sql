{#- The dates an invocation works on. mlwatch passes them in the environment
    (MLWATCH_RUN_DATE, MLWATCH_FIRST_WINDOW_END), and they are read only when models run,
    not while dbt parses: the project then parses once per configuration and every
    night reuses the parse. -#}

{% macro run_date_iso() -%}
    {%- if execute -%}{{ env_var('MLWATCH_RUN_DATE') }}{%- else -%}2000-01-01{%- endif -%}
{%- endmacro %}

{% macro run_date() -%}
    cast('{{ run_date_iso() }}' as date)
{%- endmacro %}

{#- The first day this invocation was asked about: the run date for a night, the first
    day for a backfill (before the label horizon widens it, below). -#}
{% macro first_day_asked_iso() -%}
    {%- if execute -%}{{ env_var('MLWATCH_FIRST_WINDOW_END') }}{%- else -%}2000-01-01{%- endif -%}
{%- endmacro %}

{% macro first_day_asked() -%}
    cast('{{ first_day_asked_iso() }}' as date)
{%- endmacro %}

{#- The first window end recomputed: labels can still arrive for predictions up to
    the longest label_delay_days back, so every window ending in that span may change. -#}
{% macro first_window_end_iso() -%}
    {%- set first = modules.datetime.date.fromisoformat(first_day_asked_iso() | trim) -%}
    {%- set delays = [0] -%}
    {%- for name, m in var("models").items() -%}{%- do delays.append(m.label_delay_days) -%}{%- endfor -%}
    {{- (first - modules.datetime.timedelta(days=delays | max)).isoformat() -}}
{%- endmacro %}

{% macro first_window_end() -%}
    cast('{{ first_window_end_iso() }}' as date)
{%- endmacro %}

{#- A backtest night: `mlwatch backfill` replays the alert rules on every night of its
    range, with what each night knew (include/mlwatch/backtest.py). Such a night recomputes
    every figure a nightly run would, except marts.performance's window ends: only those
    the rules read that night, its own and the (model, end) pairs in MLWATCH_BACKTEST_ENDS
    (`model=YYYY-MM-DD`, comma-separated: windows whose estimate the labels settle that
    night). The others are recomputed by the backfill's build of its last night. DuckDB only. -#}
{% macro backtest_night() -%}
    {{- return(execute and env_var('MLWATCH_BACKTEST_NIGHT', '') == '1') -}}
{%- endmacro %}

{% macro backtest_extra_ends() -%}
    {%- set pairs = [] -%}
    {%- if backtest_night() -%}
    {%- for item in env_var('MLWATCH_BACKTEST_ENDS', '').split(',') if item.strip() -%}
        {%- set name, end = item.strip().split('=') -%}
        {%- do pairs.append((name, end)) -%}
    {%- endfor -%}
    {%- endif -%}
    {{- return(pairs) -}}
{%- endmacro %}

{#- Whether `end_column` (of the model in `model_column`) is a window end this invocation
    recomputes: the run range, or on a backtest night the ends it reads. -#}
{% macro window_end_recomputed(model_column, end_column) -%}
    {%- if backtest_night() -%}
    ({{ end_column }} = {{ run_date() }}
        {%- for name, end in backtest_extra_ends() %}
        or ({{ model_column }} = {{ sql_literal(name) }} and {{ end_column }} = cast('{{ end }}' as date))
        {%- endfor %})
    {%- else -%}
    {{ end_column }} between {{ first_window_end() }} and {{ run_date() }}
    {%- endif -%}
{%- endmacro %}

{#- Whether a prediction of `day_column` (of the model in `model_column`) is read by this
    invocation's windows (`longest` days long), besides the reference period: every window
    of the run range; on a backtest night, the windows it recomputes and the label
    horizon's days, whose daily figures (label maturity, coverage) a night recomputes. -#}
{% macro prediction_day_read(model_column, day_column, longest) -%}
    {%- if backtest_night() -%}
    ({{ day_column }} >= least({{ first_window_end() }}, {{ add_days(1 - longest, run_date()) }})
        {%- for name, end in backtest_extra_ends() %}
        or ({{ model_column }} = {{ sql_literal(name) }}
            and {{ day_column }} between {{ add_days(1 - longest, "cast('" ~ end ~ "' as date)") }} and cast('{{ end }}' as date))
        {%- endfor %})
    {%- else -%}
    {{ day_column }} >= {{ add_days(1 - longest, first_window_end()) }}
    {%- endif -%}
{%- endmacro %}

{#- One row per day from start to end (ISO strings), as portable SQL. -#}
{% macro calendar(start_iso, end_iso, column="day") -%}
    {%- set start = modules.datetime.date.fromisoformat(start_iso) -%}
    {%- set end = modules.datetime.date.fromisoformat(end_iso) -%}
    {%- set days = (end - start).days -%}
    {%- if days < 0 %}
    select cast(null as date) as {{ column }} where 1 = 0
    {%- else -%}
    {%- for i in range(days + 1) %}
    select cast('{{ (start + modules.datetime.timedelta(days=i)).isoformat() }}' as date) as {{ column }}
    {%- if not loop.last %} union all{% endif -%}
    {%- endfor -%}
    {%- endif -%}
{%- endmacro %}

{% macro sql_literal(value) -%}
    {%- if value is none -%}null
    {%- elif value is string -%}'{{ value | replace("'", "''") }}'
    {%- elif value is sameas true -%}true
    {%- elif value is sameas false -%}false
    {%- else -%}{{ value }}
    {%- endif -%}
{%- endmacro %}

{#- 64-bit floating point. type_double() is 32-bit on DuckDB, too coarse for metrics. -#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'mlwatch')()) }}
{%- endmacro %}

{% macro default__type_double() -%}double{%- endmacro %}
{% macro postgres__type_double() -%}double precision{%- endmacro %}

{#- A date plus a number of days, as a date (dbt.dateadd gives a timestamp on some engines). -#}
{% macro add_days(days, date_expression) -%}
    {{ return(adapter.dispatch('add_days', 'mlwatch')(days, date_expression)) }}
{%- endmacro %}

{% macro default__add_days(days, date_expression) -%}
    cast({{ dbt.dateadd('day', days, date_expression) }} as date)
{%- endmacro %}

{#- Aggregate: `value` on the row with the greatest (order_columns...), compared in that
    order; NULL values are kept, so a NULL on that row is the answer. One hash
    aggregation instead of a window's sort. -#}
{% macro value_at_max(value, order_columns) -%}
    {{ return(adapter.dispatch('value_at_max', 'mlwatch')(value, order_columns)) }}
{%- endmacro %}

{% macro default__value_at_max(value, order_columns) -%}
    arg_max_null({{ value }}, row({{ order_columns | join(', ') }}))
{%- endmacro %}
