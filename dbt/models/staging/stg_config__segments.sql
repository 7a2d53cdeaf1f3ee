{#- The segment columns of each model, and how many of their values get their own rows. -#}
{%- set rows = [] -%}
{%- for name, m in var('models').items() -%}
    {%- for segment in m.segments -%}{%- do rows.append((name, segment, m.segment_top_k)) -%}{%- endfor -%}
{%- endfor -%}

{%- for name, segment, top_k in rows %}
select
    cast({{ sql_literal(name) }} as {{ dbt.type_string() }}) as model_name,
    cast({{ sql_literal(segment) }} as {{ dbt.type_string() }}) as segment,
    cast({{ top_k }} as {{ dbt.type_int() }}) as top_k
{% if not loop.last %}union all{% endif %}
{%- else %}
select
    cast(null as {{ dbt.type_string() }}) as model_name,
    cast(null as {{ dbt.type_string() }}) as segment,
    cast(null as {{ dbt.type_int() }}) as top_k
where 1 = 0
{%- endfor %}
