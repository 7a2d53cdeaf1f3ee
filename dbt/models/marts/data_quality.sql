{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ replace_range('day', first_window_end(), run_date()) }}",
    )
}}

{#- Per model, day (the partition's date) and feed: rows read, accepted and
    quarantined, the rules that quarantined them, the values kept despite breaking a
    warning rule, the accepted labels that cannot join a prediction, and whether a file of the partition could not be used at all. The stages feed belongs to no model: '__pipeline__'.
    Rows whose model could not be read count under '__unknown__'. -#}
{%- set feeds = ['predictions', 'labels', 'costs', 'stages'] %}

with accepted as (
{%- for feed in feeds %}
    select
        {% if feed == 'stages' %}'__pipeline__'{% else %}model_name{% endif %} as model_name,
        _partition_date as day,
        '{{ feed }}' as feed,
        count(*) as n_accepted
    from {{ source('raw', feed) }}
    where _partition_date between {{ first_window_end() }} and {{ run_date() }}
    group by 1, 2, 3
    {% if not loop.last %}union all{% endif %}
{%- endfor %}
),

quarantined_rules as (
{%- for feed in feeds %}
    select
        {% if feed == 'stages' %}'__pipeline__'{% else %}coalesce(model_name, '__unknown__'){% endif %} as model_name,
        _partition_date as day,
        '{{ feed }}' as feed,
        {{ array_first('rules') }} as rule
    from {{ source('quarantine', feed) }}
    where _partition_date between {{ first_window_end() }} and {{ run_date() }}
    {% if not loop.last %}union all{% endif %}
{%- endfor %}
),

rule_counts as (
    select model_name, day, feed, rule, count(*) as n
    from quarantined_rules
    group by model_name, day, feed, rule
),

quarantined as (
    select
        model_name,
        day,
        feed,
        sum(n) as n_quarantined,
        {{ ordered_listagg("rule || ' (' || cast(n as " ~ dbt.type_string() ~ ") || ')'", "', '", "order by n desc, rule") }} as reasons
    from rule_counts
    group by model_name, day, feed
),

warnings as (
    select
        case when feed = 'stages' then '__pipeline__' else coalesce(model_name, '__unknown__') end as model_name,
        partition_date as day,
        feed,
        sum(n_rows) as n_warnings,
        {{ ordered_listagg("rule || ' (' || cast(n_rows as " ~ dbt.type_string() ~ ") || ')'", "', '", "order by n_rows desc, rule") }} as warnings
    from {{ source('ops', 'contract_warnings') }}
    where partition_date between {{ first_window_end() }} and {{ run_date() }}
    group by 1, 2, 3
),

orphans as (
    select
        model_name,
        partition_date as day,
        feed,
        sum(n_labels) as n_orphaned,
        {{ ordered_listagg("reason || ' (' || cast(n_labels as " ~ dbt.type_string() ~ ") || ')'", "', '", "order by n_labels desc, reason") }} as orphans
    from {{ source('ops', 'label_orphans') }}
    where partition_date between {{ first_window_end() }} and {{ run_date() }}
    group by 1, 2, 3
),

failed_partitions as (
    select feed, partition_date as day, max(error) as error
    from {{ source('ops', 'ingest_partitions') }}
    where status = 'failed' and partition_date between {{ first_window_end() }} and {{ run_date() }}
    group by feed, partition_date
),

keys as (
    select model_name, day, feed from accepted
    union
    select model_name, day, feed from quarantined
    union
    -- a partition that never loaded still shows, under the model it cannot name
    select '__unknown__' as model_name, day, feed from failed_partitions
)

select
    keys.model_name,
    keys.day,
    keys.feed,
    cast(coalesce(accepted.n_accepted, 0) + coalesce(quarantined.n_quarantined, 0) as {{ dbt.type_bigint() }}) as n_rows,
    cast(coalesce(accepted.n_accepted, 0) as {{ dbt.type_bigint() }}) as n_accepted,
    cast(coalesce(quarantined.n_quarantined, 0) as {{ dbt.type_bigint() }}) as n_quarantined,
    {{ safe_divide('coalesce(quarantined.n_quarantined, 0)', 'coalesce(accepted.n_accepted, 0) + coalesce(quarantined.n_quarantined, 0)') }} as quarantined_share,
    quarantined.reasons,
    cast(coalesce(warnings.n_warnings, 0) as {{ dbt.type_bigint() }}) as n_warnings,
    warnings.warnings,
    cast(coalesce(orphans.n_orphaned, 0) as {{ dbt.type_bigint() }}) as n_orphaned,
    orphans.orphans,
    failed_partitions.error is not null as has_failed_files,
    failed_partitions.error as failure
from keys
left join accepted
    on accepted.model_name = keys.model_name and accepted.day = keys.day and accepted.feed = keys.feed
left join quarantined
    on quarantined.model_name = keys.model_name and quarantined.day = keys.day and quarantined.feed = keys.feed
left join warnings
    on warnings.model_name = keys.model_name and warnings.day = keys.day and warnings.feed = keys.feed
left join orphans
    on orphans.model_name = keys.model_name and orphans.day = keys.day and orphans.feed = keys.feed
left join failed_partitions
    on failed_partitions.feed = keys.feed and failed_partitions.day = keys.day
