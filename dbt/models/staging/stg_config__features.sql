{#- One row per model and feature, with the contract's range, default and criticality. -#}
{%- set rows = [] -%}
{%- for name, m in var('models').items() -%}
    {%- for feature, spec in m.features.items() -%}{%- do rows.append((name, feature, spec)) -%}{%- endfor -%}
{%- endfor -%}

{%- for name, feature, spec in rows %}
select
    cast({{ sql_literal(name) }} as {{ dbt.type_string() }}) as model_name,
    cast({{ sql_literal(feature) }} as {{ dbt.type_string() }}) as feature_name,
    cast({{ sql_literal(spec.type) }} as {{ dbt.type_string() }}) as feature_type,
    cast({{ sql_literal(spec.min) }} as {{ type_double() }}) as min_value,
    cast({{ sql_literal(spec.max) }} as {{ type_double() }}) as max_value,
    cast({{ sql_literal(none if spec.default is none else spec.default | string) }} as {{ dbt.type_string() }}) as default_value,
    cast({{ sql_literal(spec['values'] is not none) }} as {{ dbt.type_boolean() }}) as has_value_list,
    cast({{ sql_literal(spec.critical) }} as {{ dbt.type_boolean() }}) as is_critical,
    cast({{ sql_literal(spec.get('cost')) }} as {{ type_double() }}) as cost_per_prediction
{% if not loop.last %}union all{% endif %}
{%- else %}
select
    cast(null as {{ dbt.type_string() }}) as model_name,
    cast(null as {{ dbt.type_string() }}) as feature_name,
    cast(null as {{ dbt.type_string() }}) as feature_type,
    cast(null as {{ type_double() }}) as min_value,
    cast(null as {{ type_double() }}) as max_value,
    cast(null as {{ dbt.type_string() }}) as default_value,
    cast(null as {{ dbt.type_boolean() }}) as has_value_list,
    cast(null as {{ dbt.type_boolean() }}) as is_critical,
    cast(null as {{ type_double() }}) as cost_per_prediction
where 1 = 0
{%- endfor %}
