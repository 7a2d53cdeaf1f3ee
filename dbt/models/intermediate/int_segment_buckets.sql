{#- Which raw segment values get rows of their own: per model, segment column and
    basis period, the top_k values by prediction volume; every other value (and any value
    unseen in the basis) falls in '__other__', so a high-cardinality column cannot explode
    the table. The basis of a window ending on D is the reference period up to D (the
    trailing days up to D for windows before the reference starts): it depends on D only,
    so segment rows stay stable from night to night. -#}

with bases as (
    select distinct model_name, segment_basis_start, segment_basis_end
    from {{ ref('int_window_ends') }}
),

-- Volumes need no labels: the predictions of the bases' days only, segmented.
basis_predictions as (
    select in_scope.*
    from {{ ref('int_predictions_in_scope') }} as in_scope
    where in_scope.prediction_day between (select min(segment_basis_start) from bases)
                                      and (select max(segment_basis_end) from bases)
),

segmented as (
    {{ segment_rows('basis_predictions') }}
),

volumes as (
    select model_name, segment, segment_raw_value, prediction_day, count(*) as n
    from segmented
    where segment <> '__all__'
    group by model_name, segment, segment_raw_value, prediction_day
),

basis_volumes as (
    select
        bases.model_name,
        bases.segment_basis_start,
        bases.segment_basis_end,
        volumes.segment,
        volumes.segment_raw_value,
        sum(volumes.n) as n
    from bases
    inner join volumes
        on volumes.model_name = bases.model_name
        and volumes.prediction_day between bases.segment_basis_start and bases.segment_basis_end
    group by 1, 2, 3, 4, 5
),

ranked as (
    select
        basis_volumes.*,
        row_number() over (
            partition by model_name, segment_basis_start, segment_basis_end, segment
            order by n desc, segment_raw_value
        ) as volume_rank
    from basis_volumes
)

select
    ranked.model_name,
    ranked.segment_basis_start,
    ranked.segment_basis_end,
    ranked.segment,
    ranked.segment_raw_value,
    case when ranked.volume_rank <= segments.top_k then ranked.segment_raw_value else '__other__' end as segment_value
from ranked
inner join {{ ref('stg_config__segments') }} as segments
    on segments.model_name = ranked.model_name and segments.segment = ranked.segment
