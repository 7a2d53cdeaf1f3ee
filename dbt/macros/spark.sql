{#- Apache Spark (dbt-spark) versions of the project's dispatch macros. The DuckDB
    warehouse compiles with the default__ versions beside each dispatcher; these make the
    same models compile to Spark SQL that computes the same numbers
    (tests/test_spark_parity.py compares every mart).

    Spark runs with spark.sql.ansi.enabled=false (include/mlwatch/spark_engine.py, and the
    spark target of profiles.yml), like DuckDB: an expression whose value a CASE discards
    may divide by zero without failing the query. -#}

{#- Spark reads 1.0 as DECIMAL and keeps decimal arithmetic, whose divisions round to as
    few as 6 decimal places; 1.0D is a double, as DuckDB computes. -#}
{% macro spark__double_literal(value) -%}{{ value }}D{%- endmacro %}

{#- dbt-spark's dateadd goes through unix timestamps; date_add is a date already. -#}
{% macro spark__add_days(days, date_expression) -%}
    date_add({{ date_expression }}, {{ days }})
{%- endmacro %}

{#- As DuckDB's date_diff('millisecond', ...): the difference of the whole milliseconds
    since the epoch. dbt-spark's datediff('millisecond') goes through whole seconds. -#}
{% macro spark__seconds_between(start_timestamp, end_timestamp) -%}
    ((unix_micros(cast({{ end_timestamp }} as timestamp)) div 1000)
        - (unix_micros(cast({{ start_timestamp }} as timestamp)) div 1000)) / 1000.0D
{%- endmacro %}

{#- Spark arrays are 0-based; try_element_at is 1-based and NULL past the end. -#}
{% macro spark__array_first(array_expression) -%}
    try_element_at({{ array_expression }}, 1)
{%- endmacro %}

{#- dbt-spark's listagg ignores the order (collect_list); Spark 4 has LISTAGG ... WITHIN GROUP. -#}
{% macro spark__ordered_listagg(measure, delimiter_text, order_by_clause) -%}
    listagg({{ measure }}, {{ delimiter_text }}) within group ({{ order_by_clause }})
{%- endmacro %}

{#- dbt.safe_cast: dbt-spark's is a plain cast, which fails on text that is not a number
    (multiclass labels) when ANSI mode is on; try_cast gives NULL in every mode, as DuckDB's
    TRY_CAST does. -#}
{% macro spark__safe_cast(field, type) -%}
    try_cast({{ field }} as {{ type }})
{%- endmacro %}

{#- Spark's file tables (parquet) have no DELETE: an incremental run rewrites the table
    without the rows of the recomputed range (those the model owns: `where`), through a
    copy, since Spark cannot overwrite a table it reads in the same statement. The hook's
    own statement is then a no-op. -#}
{% macro spark__replace_range(column, start_expr, end_expr, where=none) -%}
    {%- if execute and is_incremental() -%}
        {%- set kept = this.incorporate(path={"identifier": this.identifier ~ "__mlwatch_kept"}) -%}
        {%- set condition = column ~ ' between ' ~ start_expr ~ ' and ' ~ end_expr
            ~ ((' and (' ~ where ~ ')') if where else '') -%}
        {%- do run_query('drop table if exists ' ~ kept) -%}
        {%- do run_query('create table ' ~ kept ~ ' as select * from ' ~ this
                         ~ ' where not coalesce(' ~ condition ~ ', false)') -%}
        {%- do run_query('insert overwrite table ' ~ this ~ ' select * from ' ~ kept) -%}
        {%- do run_query('drop table ' ~ kept) -%}
    {%- endif -%}
    select 1
{%- endmacro %}

{#- The metric rows of a group as one pass over `stats` (stack unpivots them), instead
    of one SELECT per metric joined by UNION ALL: Spark plans and runs each branch's copy
    of the stats CTE (the ranking sort and joins) separately. Same rows and types. -#}
{% macro spark__metric_rows(group_columns, rows) -%}
    select
        {{ _prefixed('s', group_columns) }},
        stack({{ rows | length }}
        {%- for row in rows %}
        {%- set name, value, ci_low, ci_high = row[:4] %}
        {%- set method, bound = _ranking_of(row) %},
            cast('{{ name }}' as {{ dbt.type_string() }}),
            cast({{ value }} as {{ type_double() }}),
            cast({{ ci_low }} as {{ type_double() }}),
            cast({{ ci_high }} as {{ type_double() }}),
            cast({{ method }} as {{ dbt.type_string() }}),
            cast({{ bound }} as {{ type_double() }})
        {%- endfor %}
        ) as (metric, value, ci_low, ci_high, ranking_method, ranking_error_bound),
        cast(s.n_predictions as {{ dbt.type_bigint() }}) as n_predictions,
        cast(s.n_labeled as {{ dbt.type_bigint() }}) as n_labeled
    from stats as s
{%- endmacro %}

{#- max_by keeps a NULL value on the greatest row; structs compare field by field. -#}
{% macro spark__value_at_max(value, order_columns) -%}
    max_by({{ value }}, struct({{ order_columns | join(', ') }}))
{%- endmacro %}
