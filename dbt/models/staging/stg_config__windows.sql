{#- One row per model and trailing window (days). -#}
{%- set rows = [] -%}
{%- for name, m in var('models').items() -%}
    {%- for w in m.windows -%}{%- do rows.append((name, w)) -%}{%- endfor -%}
{%- endfor -%}

{%- for name, w in rows %}
select
    cast({{ sql_literal(name) }} as {{ dbt.type_string() }}) as model_name,
    cast({{ w }} as {{ dbt.type_int() }}) as window_days
{% if not loop.last %}union all{% endif %}
{%- else %}
select cast(null as {{ dbt.type_string() }}) as model_name, cast(null as {{ dbt.type_int() }}) as window_days
where 1 = 0
{%- endfor %}
