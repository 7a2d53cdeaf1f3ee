with source as (
    select * from {{ source('raw', 'costs') }}
)

select
    _partition_date as cost_day,
    _source_file,
    model_name,
    component,
    cost_usd
from source
