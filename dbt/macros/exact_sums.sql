{#- Exact sums of floating-point terms, so that marts.performance can aggregate on every
    core and a rerun still writes bit-identical numbers: a floating-point sum depends on
    the order of its terms, and parallel aggregation changes that order from run to run.

    A term bounded by 2^bound is scaled by 2^(88 - bound) (fixed_point_scale), rounded to
    an integer and added as DECIMAL(38, 0): integer sums are exact, hence the same in any
    order. A scaled term is at most 2^88, so up to 2^38 terms fit (DECIMAL(38, 0) holds
    2^126), and each term keeps 2^-89 of its bound: far below a double's rounding of the
    total. from_fixed_point turns a sum back into a double.

    `bound` is an integer literal for terms with a known bound (a clipped log loss, a
    probability) or, for the user's own numbers (regression outcomes, weights),
    bound_exponent() of their largest magnitude in the night's rows. -#}

{% macro fixed_point_scale(bound) -%}
    pow({{ double_literal('2.0') }}, 88 - ({{ bound }}))
{%- endmacro %}

{% macro fixed_point(term, scale) -%}
    cast(round(cast({{ term }} as {{ type_double() }}) * {{ scale }}) as decimal(38, 0))
{%- endmacro %}

{% macro from_fixed_point(total, scale) -%}
    (cast({{ total }} as {{ type_double() }}) / ({{ scale }}))
{%- endmacro %}

{#- The exact sum of `term` over a group, as a double. -#}
{% macro exact_sum(term, scale) -%}
    {{ from_fixed_point('sum(' ~ fixed_point(term, scale) ~ ')', scale) }}
{%- endmacro %}

{#- The scales of the bounded terms that a daily model sums and marts.performance turns
    back into doubles: one definition for both sides. A clipped log loss is at most
    -ln(2.2e-16) = 36.04 < 2^6, its square < 2^11; a probability, a Brier term or an F1 at
    most 1. -#}
{% macro log_loss_scale() -%}{{ fixed_point_scale(6) }}{%- endmacro %}
{% macro log_loss_square_scale() -%}{{ fixed_point_scale(11) }}{%- endmacro %}
{% macro unit_scale() -%}{{ fixed_point_scale(0) }}{%- endmacro %}

{#- The least integer e with |value| <= 2^e for every value whose greatest magnitude is
    max_abs, kept within [-200, 200] so that the scale of a fourth power stays a finite
    double (a squared error's square); 0 when there are no values. -#}
{% macro bound_exponent(max_abs) -%}
    cast(least(200, greatest(-200, ceil(log2(greatest(coalesce({{ max_abs }}, 1), 1e-60))))) as integer)
{%- endmacro %}

{#- dbt hooks for the models whose numbers do not depend on the order of their rows
    (marts.performance: exact sums, above; feature_coverage, label_maturity: integer
    counts): they run on every core, the others keep the profile's single thread. Spark
    parallelizes by itself. -#}
{% macro use_all_cores() -%}
    {{ return(adapter.dispatch('use_all_cores', 'mlwatch')()) }}
{%- endmacro %}

{% macro default__use_all_cores() -%}select 1{%- endmacro %}
{% macro duckdb__use_all_cores() -%}reset threads{%- endmacro %}

{% macro use_one_core() -%}
    {{ return(adapter.dispatch('use_one_core', 'mlwatch')()) }}
{%- endmacro %}

{% macro default__use_one_core() -%}select 1{%- endmacro %}
{% macro duckdb__use_one_core() -%}set threads = 1{%- endmacro %}
