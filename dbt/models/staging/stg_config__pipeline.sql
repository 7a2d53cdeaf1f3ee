{#- The serving pipeline's stages in order (configuration `pipeline`), from var('pipeline'). -#}
{%- set stages = var('pipeline', []) -%}

{%- for stage in stages %}
select
    cast({{ sql_literal(stage) }} as {{ dbt.type_string() }}) as stage,
    cast({{ loop.index }} as {{ dbt.type_int() }}) as stage_order
{% if not loop.last %}union all{% endif %}
{%- else %}
select cast(null as {{ dbt.type_string() }}) as stage, cast(null as {{ dbt.type_int() }}) as stage_order
where 1 = 0
{%- endfor %}
