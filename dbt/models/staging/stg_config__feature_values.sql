{#- The allowed categories of each categorical feature that lists them. -#}
{%- set rows = [] -%}
{%- for name, m in var('models').items() -%}
    {%- for feature, spec in m.features.items() if spec['values'] is not none -%}
        {%- for value in spec['values'] -%}{%- do rows.append((name, feature, value)) -%}{%- endfor -%}
    {%- endfor -%}
{%- endfor -%}

{%- for name, feature, value in rows %}
select
    cast({{ sql_literal(name) }} as {{ dbt.type_string() }}) as model_name,
    cast({{ sql_literal(feature) }} as {{ dbt.type_string() }}) as feature_name,
    cast({{ sql_literal(value | string) }} as {{ dbt.type_string() }}) as allowed_value
{% if not loop.last %}union all{% endif %}
{%- else %}
select
    cast(null as {{ dbt.type_string() }}) as model_name,
    cast(null as {{ dbt.type_string() }}) as feature_name,
    cast(null as {{ dbt.type_string() }}) as allowed_value
where 1 = 0
{%- endfor %}
