with source as (
    select * from {{ source('raw', 'labels') }}
)

select
    _partition_date,
    _source_file,
    _row_number,
    model_name,
    prediction_id,
    label,
    labeled_at,
    cast(labeled_at as date) as labeled_day,
    weight as label_weight
from source
