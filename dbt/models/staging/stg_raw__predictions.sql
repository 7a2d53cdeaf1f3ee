with source as (
    select * from {{ source('raw', 'predictions') }}
)

select
    *,
    cast(predicted_at as date) as prediction_day,
    {{ seconds_between('event_at', 'predicted_at') }} as time_to_decision_s
from source
