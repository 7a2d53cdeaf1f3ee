{#- `left.c = right.c and ...` for each of `columns`: a join or lookup on a key. -#}
{% macro same_values(left, right, columns) -%}
    {%- for column in columns -%}
    {{ ' and ' if not loop.first }}{{ left }}.{{ column }} = {{ right }}.{{ column }}
    {%- endfor -%}
{%- endmacro %}
