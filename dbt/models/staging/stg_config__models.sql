{#- The configuration's models, as passed by mlwatch in var('models'). -#}
{%- set models = var('models') -%}

{%- for name, m in models.items() %}
select
    cast({{ sql_literal(name) }} as {{ dbt.type_string() }}) as model_name,
    cast({{ sql_literal(m.task) }} as {{ dbt.type_string() }}) as task,
    cast({{ sql_literal(m.positive_label) }} as {{ dbt.type_string() }}) as positive_label,
    cast({{ m.decision_threshold }} as {{ type_double() }}) as decision_threshold,
    cast({{ m.label_delay_days }} as {{ dbt.type_int() }}) as label_delay_days,
    cast('{{ m.reference_start }}' as date) as reference_start,
    cast('{{ m.reference_end }}' as date) as reference_end,
    cast({{ sql_literal(m.weight_column) }} as {{ dbt.type_string() }}) as weight_column,
    cast({{ m.min_labeled_rows }} as {{ dbt.type_int() }}) as min_labeled_rows
{% if not loop.last %}union all{% endif %}
{%- else %}
select
    cast(null as {{ dbt.type_string() }}) as model_name,
    cast(null as {{ dbt.type_string() }}) as task,
    cast(null as {{ dbt.type_string() }}) as positive_label,
    cast(null as {{ type_double() }}) as decision_threshold,
    cast(null as {{ dbt.type_int() }}) as label_delay_days,
    cast(null as date) as reference_start,
    cast(null as date) as reference_end,
    cast(null as {{ dbt.type_string() }}) as weight_column,
    cast(null as {{ dbt.type_int() }}) as min_labeled_rows
where 1 = 0
{%- endfor %}
