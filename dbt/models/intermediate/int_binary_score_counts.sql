{#- Binary models, labeled predictions: per day group (model, version, day, segment and
    raw segment value, as int_binary_daily's day_key) and distinct score, the positives
    and negatives. A window's ranking metrics (ROC AUC, average precision) need only these
    counts, summed over its days. The other metrics come from int_binary_daily, without
    the score.

    The day group is one 64-bit key instead of five columns: this relation has a row per
    distinct score, marts.performance reads it several times (windows and reference, day
    groups ranked alone and those added up per score), and the narrow rows are what the
    engine keeps in memory between the reads. -#}

with rows_by_version as (
    select
        model_name, version_group as model_version, prediction_day, segment, segment_raw_value, score,
        is_labeled, is_positive
    from {{ ref('int_predictions_segmented') }}
    where task = 'binary_classification'
)

select
    {{ group_key(['model_name', 'model_version', 'prediction_day', 'segment', 'segment_raw_value']) }} as day_key,
    score,
    -- The lower edge of the score's bin, for a model that may rank in bins
    -- (macros/ranking.sql); NULL for a model that always ranks exactly.
    case when {{ ranking_method_of('model_name') }} <> 'exact'
        then {{ score_bin('score', ranking_bins_of('model_name')) }} end as score_bin,
    -- 64-bit counts: the ranking's sort carries every distinct score, and DuckDB's sum of
    -- integers is 128-bit.
    cast(sum(case when is_positive = 1 then 1 else 0 end) as {{ dbt.type_bigint() }}) as n_pos,
    cast(sum(case when is_positive = 0 then 1 else 0 end) as {{ dbt.type_bigint() }}) as n_neg
from rows_by_version
where is_labeled
group by 1, 2, 3
