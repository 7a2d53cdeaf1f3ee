{#- Ephemeral on every engine (dbt_project.yml makes the other intermediate models
    tables on Spark): each consumer reads its own task's rows and a few columns of it. -#}
{{ config(materialized='ephemeral') }}

{#- Each labeled prediction once per segment group it is measured in: the whole model
    ('__all__') and each configured segment column with the row's raw value
    ('__missing__' for NULL), under its own version (version_group). All versions
    together ('__all__') are summed from the versions' daily aggregates in
    marts/performance.sql, so no row is counted twice here. Buckets (top values and
    '__other__') are assigned per window in marts/performance.sql. -#}
{%- set pairs = [] -%}
{%- for name, m in var('models').items() -%}
    {%- for segment in m.segments -%}{%- do pairs.append((name, segment)) -%}{%- endfor -%}
{%- endfor %}

with labeled as (
    select * from {{ ref('int_predictions_labeled') }}
),

versions as (
    select labeled.*, model_version as version_group from labeled
)

select
    versions.*,
    cast('__all__' as {{ dbt.type_string() }}) as segment,
    cast('__all__' as {{ dbt.type_string() }}) as segment_raw_value
from versions
{%- for name, segment in pairs %}
union all
select
    versions.*,
    cast({{ sql_literal(segment) }} as {{ dbt.type_string() }}) as segment,
    coalesce(cast(versions.{{ adapter.quote(segment) }} as {{ dbt.type_string() }}), '__missing__') as segment_raw_value
from versions
where versions.model_name = {{ sql_literal(name) }}
{%- endfor %}
