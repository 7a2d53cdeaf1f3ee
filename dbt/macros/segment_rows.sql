{#- Each row of `relation` once per segment group it is measured in: the whole model
    ('__all__') and each configured segment column with the row's raw value
    ('__missing__' for NULL), under its own version (version_group). All versions
    together ('__all__') are summed later from the versions' daily aggregates, so no row
    is counted twice here. `relation` is a CTE of the calling model with model_name,
    model_version and the segment columns. -#}
{% macro segment_rows(relation) -%}
{%- set pairs = [] -%}
{%- for name, m in var('models').items() -%}
    {%- for segment in m.segments -%}{%- do pairs.append((name, segment)) -%}{%- endfor -%}
{%- endfor %}
select
    {{ relation }}.*,
    {{ relation }}.model_version as version_group,
    cast('__all__' as {{ dbt.type_string() }}) as segment,
    cast('__all__' as {{ dbt.type_string() }}) as segment_raw_value
from {{ relation }}
{%- for name, segment in pairs %}
union all
select
    {{ relation }}.*,
    {{ relation }}.model_version as version_group,
    cast({{ sql_literal(segment) }} as {{ dbt.type_string() }}) as segment,
    coalesce(cast({{ relation }}.{{ adapter.quote(segment) }} as {{ dbt.type_string() }}), '__missing__') as segment_raw_value
from {{ relation }}
where {{ relation }}.model_name = {{ sql_literal(name) }}
{%- endfor %}
{%- endmacro %}
