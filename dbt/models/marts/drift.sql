{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ replace_range('window_end', first_window_end(), run_date()) }}",
    )
}}

{#- Drift per model, trailing window, window end, feature ('__score__' for the score) and
    method, as computed by mlwatch from histograms built in DuckDB
    (include/mlwatch/drift/), with whether it came with a measured effect. A drifted
    feature has impact when it moves the score (moves_score: its new distribution shifts
    the mean score, given the reference's score per bin) and the model's performance
    (its SLO metric, all versions) is worse than the reference with an interval that
    excludes it in the same window. While there are too few labels to tell, a binary
    model's reliable estimate from the scores judges instead (its SLO window missed, as
    estimated_performance_drop judges it: impact 'estimated_performance'; held: none), and
    where there is no reliable estimate, the score moving is impact enough ('score'). A
    drifted score has impact with the same evidence, except that a score no drifted feature
    explains keeps impact 'score' while the estimate holds: the estimate assumes the model
    and the odds given the features unchanged, which such a score puts in doubt. Drift
    without impact is a digest item, not a page. -#}
{%- set slo_rows = [] -%}
{%- for name, m in var('models').items() -%}{%- do slo_rows.append((name, m.slos)) -%}{%- endfor %}

with statistics as (
    select * from {{ source('ops', 'drift_statistics') }}
    where window_end between {{ first_window_end() }} and {{ run_date() }}
),

slo_metrics as (
{%- for name, s in slo_rows %}
    select
        cast({{ sql_literal(name) }} as {{ dbt.type_string() }}) as model_name,
        cast({{ sql_literal(s.performance_metric) }} as {{ dbt.type_string() }}) as metric,
        {{ sql_literal(s.performance_higher_is_better) }} as higher_is_better,
        {{ s.performance_min_labeled }} as min_labeled,
        {{ s.performance_max_relative_drop }} as max_relative_drop,
        {{ s.performance_window_days }} as judged_window_days
    {% if not loop.last %}union all{% endif %}
{%- else %}
    select cast(null as {{ dbt.type_string() }}) as model_name, cast(null as {{ dbt.type_string() }}) as metric,
        true as higher_is_better, 0 as min_labeled, 0.0 as max_relative_drop, 0 as judged_window_days
    where 1 = 0
{%- endfor %}
),

performance_moves as (
    select
        performance.model_name,
        performance.window_days,
        performance.window_end,
        case
            when performance.value is null or performance.reference_value is null
                or performance.n_labeled < slo_metrics.min_labeled then null
            when slo_metrics.higher_is_better then performance.ci_high < performance.reference_value
            else performance.ci_low > performance.reference_value
        end as performance_moved
    from {{ ref('performance') }} as performance
    inner join slo_metrics
        on slo_metrics.model_name = performance.model_name and slo_metrics.metric = performance.metric
    where performance.model_version = '__all__' and performance.segment = '__all__'
        and performance.window_end between {{ first_window_end() }} and {{ run_date() }}
),

{#- Before labels, a binary model's estimate from the scores measures the effect: the
    judged window's reliable estimate misses the SLO (enough predictions, beyond tolerance,
    its interval excluding the reference's estimate), as estimated_performance_drop judges
    that window. (The alert also tests longer windows for a smaller drop that lasts; drift
    is judged on this one.) -#}
estimate_moves as (
    select
        estimated.model_name,
        estimated.window_end,
        case
            when slo_metrics.higher_is_better then
                estimated.ci_high < estimated.reference_estimated_value
                and estimated.estimated_value < estimated.reference_estimated_value * (1 - slo_metrics.max_relative_drop)
            else
                estimated.ci_low > estimated.reference_estimated_value
                and estimated.estimated_value > estimated.reference_estimated_value * (1 + slo_metrics.max_relative_drop)
        end as estimate_moved
    from {{ ref('performance_estimated') }} as estimated
    inner join slo_metrics
        on slo_metrics.model_name = estimated.model_name and slo_metrics.metric = estimated.metric
    where estimated.model_version = '__all__' and estimated.segment = '__all__'
        and estimated.window_days = slo_metrics.judged_window_days
        and estimated.is_reliable
        and estimated.n_predictions >= slo_metrics.min_labeled
        and estimated.estimated_value is not null and estimated.reference_estimated_value is not null
        and estimated.window_end between {{ first_window_end() }} and {{ run_date() }}
),

{#- Whether drifted features explain a drifted score: then it is a covariate shift, which the
    estimate from the scores is built to judge. A score that moves with no drifted feature
    moving it is the model or its inputs changing in a way the estimate cannot see. -#}
feature_moves as (
    select
        model_name, window_days, window_end,
        {{ dbt.bool_or('coalesce(is_drifted, false) and coalesce(moves_score, false)') }} as features_moved_score
    from statistics
    where feature <> '__score__'
    group by model_name, window_days, window_end
),

score_moves as (
    select model_name, window_days, window_end, {{ dbt.bool_or('coalesce(is_drifted, false)') }} as score_moved
    from statistics
    where feature = '__score__'
    group by model_name, window_days, window_end
),

joined as (
    select
        statistics.*,
        performance_moves.performance_moved,
        estimate_moves.estimate_moved as estimated_performance_moved,
        coalesce(score_moves.score_moved, false) as score_moved,
        case
            when not coalesce(statistics.is_drifted, false) then 'none'
            when statistics.feature <> '__score__' and not coalesce(statistics.moves_score, false) then 'none'
            when performance_moves.performance_moved then 'performance'
            when performance_moves.performance_moved is not null then 'none'
            when estimate_moves.estimate_moved then 'estimated_performance'
            when estimate_moves.estimate_moved is null then 'score'
            when statistics.feature = '__score__' and not coalesce(feature_moves.features_moved_score, false)
                then 'score'
            else 'none'
        end as impact
    from statistics
    left join performance_moves
        on performance_moves.model_name = statistics.model_name
        and performance_moves.window_days = statistics.window_days
        and performance_moves.window_end = statistics.window_end
    left join estimate_moves
        on estimate_moves.model_name = statistics.model_name
        and estimate_moves.window_end = statistics.window_end
    left join feature_moves
        on feature_moves.model_name = statistics.model_name
        and feature_moves.window_days = statistics.window_days
        and feature_moves.window_end = statistics.window_end
    left join score_moves
        on score_moves.model_name = statistics.model_name
        and score_moves.window_days = statistics.window_days
        and score_moves.window_end = statistics.window_end
)

select
    model_name,
    window_days,
    window_end,
    feature,
    feature_type,
    method,
    statistic,
    p_value,
    p_value_adjusted,
    effect_size,
    threshold,
    is_drifted,
    n_current,
    n_reference,
    outside_reference_share,
    score_impact,
    moves_score,
    performance_moved,
    estimated_performance_moved,
    score_moved,
    impact,
    impact <> 'none' as has_impact
from joined
