with source as (
    select * from {{ source('raw', 'predictions') }}
)

select
    *,
    cast(predicted_at as date) as prediction_day,
    {{ dbt.datediff('event_at', 'predicted_at', 'millisecond') }} / 1000.0 as time_to_decision_s
from source
