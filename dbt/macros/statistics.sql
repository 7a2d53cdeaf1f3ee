{#- Confidence intervals as portable SQL expressions. z defaults to the 95% normal quantile. -#}

{% macro ci_z() -%}{{ var('ci_z', 1.959963984540054) }}{%- endmacro %}

{#- Wilson score interval for a proportion successes / trials (NULL when trials = 0). -#}
{% macro wilson_low(successes, trials) -%}
    case when ({{ trials }}) > 0 then
        (
            (({{ successes }}) * 1.0 / ({{ trials }})) + {{ ci_z() }} * {{ ci_z() }} / (2.0 * ({{ trials }}))
            - {{ ci_z() }} * sqrt(
                (({{ successes }}) * 1.0 / ({{ trials }})) * (1 - ({{ successes }}) * 1.0 / ({{ trials }})) / ({{ trials }})
                + {{ ci_z() }} * {{ ci_z() }} / (4.0 * ({{ trials }}) * ({{ trials }}))
            )
        ) / (1 + {{ ci_z() }} * {{ ci_z() }} / ({{ trials }}))
    end
{%- endmacro %}

{% macro wilson_high(successes, trials) -%}
    case when ({{ trials }}) > 0 then
        (
            (({{ successes }}) * 1.0 / ({{ trials }})) + {{ ci_z() }} * {{ ci_z() }} / (2.0 * ({{ trials }}))
            + {{ ci_z() }} * sqrt(
                (({{ successes }}) * 1.0 / ({{ trials }})) * (1 - ({{ successes }}) * 1.0 / ({{ trials }})) / ({{ trials }})
                + {{ ci_z() }} * {{ ci_z() }} / (4.0 * ({{ trials }}) * ({{ trials }}))
            )
        ) / (1 + {{ ci_z() }} * {{ ci_z() }} / ({{ trials }}))
    end
{%- endmacro %}

{#- Standard error of a mean from n, the sum and the sum of squares of the values. -#}
{% macro mean_standard_error(n, total, total_squares) -%}
    case when ({{ n }}) > 1 then
        sqrt(greatest(({{ total_squares }}) - ({{ total }}) * ({{ total }}) / ({{ n }}), 0) / (({{ n }}) - 1) / ({{ n }}))
    end
{%- endmacro %}

{% macro safe_divide(numerator, denominator) -%}
    case when ({{ denominator }}) <> 0 then ({{ numerator }}) * 1.0 / ({{ denominator }}) end
{%- endmacro %}

{#- Natural log of p clipped to [eps, 1 - eps], as scikit-learn's log_loss clips. -#}
{% macro clipped_ln(p) -%}
    ln(least(greatest({{ p }}, 2.220446049250313e-16), 1 - 2.220446049250313e-16))
{%- endmacro %}

{#- Continuous (linearly interpolated) percentile, as numpy.percentile computes it by default. -#}
{% macro percentile_cont(expression, fraction) -%}
    {{ return(adapter.dispatch('percentile_cont', 'mlwatch')(expression, fraction)) }}
{%- endmacro %}

{% macro default__percentile_cont(expression, fraction) -%}
    percentile_cont({{ fraction }}) within group (order by {{ expression }})
{%- endmacro %}

{% macro duckdb__percentile_cont(expression, fraction) -%}
    quantile_cont({{ expression }}, {{ fraction }})
{%- endmacro %}

{% macro spark__percentile_cont(expression, fraction) -%}
    percentile({{ expression }}, {{ fraction }})
{%- endmacro %}

{#- The number stored under a (computed) key of a JSON object held as text. -#}
{% macro json_number(json_text, key_expression) -%}
    {{ return(adapter.dispatch('json_number', 'mlwatch')(json_text, key_expression)) }}
{%- endmacro %}

{% macro default__json_number(json_text, key_expression) -%}
    cast(json_extract_string({{ json_text }}, '$."' || {{ key_expression }} || '"') as {{ type_double() }})
{%- endmacro %}

{% macro spark__json_number(json_text, key_expression) -%}
    cast(get_json_object({{ json_text }}, concat('$.', {{ key_expression }})) as double)
{%- endmacro %}

{#- A 64-bit key for a group of columns, so heavy sorts and aggregations run on one
    integer instead of several strings. Collisions need ~2^32 groups to be likely. -#}
{% macro group_key(columns) -%}
    {{ return(adapter.dispatch('group_key', 'mlwatch')(columns)) }}
{%- endmacro %}

{% macro default__group_key(columns) -%}
    {{ dbt.hash(dbt.concat(columns | map('string') | list)) }}
{%- endmacro %}

{% macro duckdb__group_key(columns) -%}
    hash({{ columns | join(', ') }})
{%- endmacro %}

{% macro spark__group_key(columns) -%}
    xxhash64({{ columns | join(', ') }})
{%- endmacro %}
