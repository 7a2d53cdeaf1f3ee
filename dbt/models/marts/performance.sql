{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook=["{{ replace_window_ends() }}", "{{ use_all_cores() }}",
                  "{{ without_partial_aggregate_pushdown() }}"],
        post_hook=["{{ use_one_core() }}", "{{ with_every_optimizer() }}"],
    )
}}

{#- Model performance per version, trailing window, window end and segment, with 95%
    intervals (see macros/performance_metrics.sql) and the reference-period value.

    Segment rows: each configured segment column's top values by volume get their own
    rows, the rest one '__other__' row (int_segment_buckets).

    The reference value of a window ending on day D is the metric over the part of the
    model's reference period up to D, all versions together, in the same segment bucket:
    a window that ends inside the reference period is compared with what was known of
    the reference by then. -#}
{%- set window_groups = ['model_name', 'version_group', 'window_end', 'window_days', 'segment', 'segment_value'] %}
{%- set reference_groups = ['model_name', 'reference_until', 'segment', 'segment_value'] %}
{%- set series_columns = ['model_name', 'version_group', 'segment', 'segment_value', 'segment_basis_start', 'segment_basis_end'] %}
{%- set all_windows = [] %}
{%- for name, m in var('models').items() %}{% for w in m.windows if w not in all_windows %}{% do all_windows.append(w) %}{% endfor %}{% endfor %}
{%- if not all_windows %}{% do all_windows.append(1) %}{% endif %}
{%- set grouped_by_window = [] %}{% for column in window_groups %}{% do grouped_by_window.append('groups.' ~ column) %}{% endfor %}

with window_ends as (
    select * from {{ ref('int_window_ends') }}
),

{{ window_day_relations() }},

{%- for task, relation in [('binary', 'int_binary_daily'), ('regression', 'int_regression_daily'),
                           ('multiclass', 'int_multiclass_daily')] %}

{{ task }}_days as (
    select * from {{ ref(relation) }}
),

{{ task }}_window_days as (
    {{ window_day_rows(task ~ '_days') }}
),

{{ task }}_reference_days as (
    {{ reference_day_rows(task ~ '_days') }}
),
{%- endfor %}

-- Windows in which a single version has labeled rows: there all versions together rank
-- exactly as that version, so its scores are not sorted a second time (see
-- window_metrics_complete).
binary_single_version_windows as (
    select
        window_ends.model_name,
        window_ends.window_end,
        window_ends.window_days,
        min(days.model_version) as only_version
    from binary_days as days
    inner join window_ends
        on window_ends.model_name = days.model_name
        and days.prediction_day between window_ends.window_start and window_ends.window_end
    where days.segment = '__all__' and days.n_pos + days.n_neg > 0
    group by window_ends.model_name, window_ends.window_end, window_ends.window_days
    having count(distinct days.model_version) = 1
),

-- The window day groups whose scores are ranked: every group but all versions together
-- in a single-version window (copied from the version in window_metrics_complete).
-- Chosen here, among the day groups, before the score counts join them (computed_once:
-- DuckDB would otherwise filter the joined score rows, 52 M at the demo's scale), each
-- with the key of its window group, how many day groups make up that window group, its
-- labeled rows and how its model ranks (macros/ranking.sql).
binary_ranked_window_days as {{ computed_once() }} (
    select
        groups.day_key,
        {{ group_key(grouped_by_window) }} as group_key,
        count(*) over (partition by {{ grouped_by_window | join(', ') }}) as day_groups,
        sum(groups.n_pos + groups.n_neg) over (partition by {{ grouped_by_window | join(', ') }}) as labeled_rows,
        {{ ranking_method_of('groups.model_name') }} as ranking_method,
        {{ ranking_bins_of('groups.model_name') }} as ranking_bins
    from binary_window_days as groups
    left join binary_single_version_windows as single_version
        on single_version.model_name = groups.model_name
        and single_version.window_end = groups.window_end
        and single_version.window_days = groups.window_days
    where groups.version_slot is null or single_version.model_name is null
),

binary_ranked_reference_days as {{ computed_once() }} (
    select
        day_key,
        {{ group_key(reference_groups) }} as group_key,
        count(*) over (partition by {{ reference_groups | join(', ') }}) as day_groups,
        sum(n_pos + n_neg) over (partition by {{ reference_groups | join(', ') }}) as labeled_rows,
        {{ ranking_method_of('model_name') }} as ranking_method,
        {{ ranking_bins_of('model_name') }} as ranking_bins
    from binary_reference_days
),

-- The score counts carry their day group as a key (int_binary_score_counts): per ranked
-- group, one row per distinct score (or bin). A group of one day group has that
-- already; the others (a 30-day window, all versions, a segment bucket of several raw
-- values) add their day groups' counts per score, so that the ranking sorts each score
-- once, not once per day.
binary_score_days as (
    select * from {{ ref('int_binary_score_counts') }}
),

-- The same per bin, for the models that may rank in bins.
binary_bin_days as {{ computed_once() }} (
    select
        day_key,
        score_bin as score,
        cast(sum(n_pos) as {{ dbt.type_bigint() }}) as n_pos,
        cast(sum(n_neg) as {{ dbt.type_bigint() }}) as n_neg
    from binary_score_days
    where score_bin is not null
    group by day_key, score_bin
),

-- Binned windows, without copying each day's bins into every window that holds it (a
-- 30-day window would read each day 30 times): a series is what a window group is
-- without its end (model, version group, segment bucket, and the basis that decides
-- the buckets); its bins are added up per day, and a trailing sum over days gives every
-- window end's bins in one pass per window length. All versions together are a series
-- of their own only for models with several versions. (Spark recomputes a CTE at every
-- reference, and these are referenced several times: there the windows copy their days'
-- bins, as scores_per_group does; the rows are the same.)
{%- if target.type != 'spark' %}
binary_multi_version_models as (
    select model_name
    from binary_window_days
    where version_slot is null and segment = '__all__' and n_pos + n_neg > 0
    group by model_name
    having count(distinct model_version) > 1
),

-- The window day groups of the models that may rank in bins, with their series.
binary_series_day_groups as (
    select
        binary_window_days.*,
        {{ group_key(series_columns) }} as series_key
    from binary_window_days
    where {{ ranking_method_of('model_name') }} <> 'exact'
        and (version_slot is null or model_name in (select model_name from binary_multi_version_models))
),

binary_series_days as {{ computed_once() }} (
    select distinct day_key, {{ day_number('prediction_day') }} as day_number, series_key
    from binary_series_day_groups
),

binary_series as (
    select distinct {{ series_columns | join(', ') }}, series_key
    from binary_series_day_groups
),

binary_series_bins as (
    select
        series_days.series_key,
        bins.score,
        series_days.day_number,
        cast(sum(bins.n_pos) as {{ dbt.type_bigint() }}) as n_pos,
        cast(sum(bins.n_neg) as {{ dbt.type_bigint() }}) as n_neg
    from binary_bin_days as bins
    inner join binary_series_days as series_days on series_days.day_key = bins.day_key
    group by series_days.series_key, bins.score, series_days.day_number
),

-- Every bin of a series at each window end its basis serves, so that the trailing sum
-- has a row there even when the bin has no rows that day.
binary_series_ends as (
    select distinct binary_series.series_key, {{ day_number('window_ends.window_end') }} as day_number
    from binary_series
    inner join window_ends
        on window_ends.model_name = binary_series.model_name
        and window_ends.segment_basis_start = binary_series.segment_basis_start
        and window_ends.segment_basis_end = binary_series.segment_basis_end
),

binary_series_rows as (
    select series_key, score, day_number, n_pos, n_neg, 0 as is_end
    from binary_series_bins
    union all
    select series_bins.series_key, series_bins.score, ends.day_number,
        cast(0 as {{ dbt.type_bigint() }}) as n_pos, cast(0 as {{ dbt.type_bigint() }}) as n_neg, 1 as is_end
    from (select distinct series_key, score from binary_series_bins) as series_bins
    inner join binary_series_ends as ends on ends.series_key = series_bins.series_key
),

-- Positives and negatives travel as one integer, positives * 2^32 + negatives, so that
-- each window length costs one RANGE-framed aggregate instead of two (DuckDB's frames cost
-- per aggregate: half the time here). A bin of one window holds far fewer than 2^32 rows.
binary_series_trailing as (
    select
        series_key,
        score,
        day_number,
        is_end
        {%- for w in all_windows %},
        sum(n_pos * 4294967296 + n_neg) over (partition by series_key, score order by day_number
                                              range between {{ w - 1 }} preceding and current row) as counts_{{ w }}
        {%- endfor %}
    from binary_series_rows
),

binary_binned_window_bins as (
    {%- for w in all_windows %}
    select
        {{ group_key(['binary_series.model_name', 'binary_series.version_group', 'window_ends.window_end',
                      'window_ends.window_days', 'binary_series.segment', 'binary_series.segment_value']) }} as group_key,
        sums.score,
        cast(sums.counts_{{ w }} // 4294967296 as {{ dbt.type_bigint() }}) as n_pos,
        cast(sums.counts_{{ w }} % 4294967296 as {{ dbt.type_bigint() }}) as n_neg
    from binary_series_trailing as sums
    inner join binary_series on binary_series.series_key = sums.series_key
    inner join window_ends
        on window_ends.model_name = binary_series.model_name
        and window_ends.window_days = {{ w }}
        and {{ day_number('window_ends.window_end') }} = sums.day_number
        and window_ends.segment_basis_start = binary_series.segment_basis_start
        and window_ends.segment_basis_end = binary_series.segment_basis_end
    where sums.is_end = 1 and sums.counts_{{ w }} > 0
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),
{%- endif %}

{%- for part in ['window', 'reference'] %}

-- Groups that rank their bins first: every group of a binned model, and the windows of
-- an adaptive model with more labeled rows than bins. An adaptive model's reference
-- ranks exactly: it is the yardstick of every window, and it does not grow with history.
binary_binned_{{ part }}_groups as (
    select * from binary_ranked_{{ part }}_days
    where ranking_method = 'binned'
        {%- if part == 'window' %} or (ranking_method = 'adaptive' and labeled_rows > ranking_bins){% endif %}
),

binary_binned_{{ part }}_scores as {% if part == 'window' %}{{ computed_once() }} {% endif %}(
    {%- if part == 'window' and target.type != 'spark' %}
    select scores.*
    from binary_binned_window_bins as scores
    where scores.group_key in (select group_key from binary_binned_window_groups)
    {%- else %}
    {{ scores_per_group('binary_bin_days', 'binary_binned_' ~ part ~ '_groups') }}
    {%- endif %}
),
{%- if part == 'window' %}

-- An adaptive window ranks a quarter of its bins first (a coarse bin is four adjacent
-- fine ones). Its bounds are then about four times larger, and most windows' still stand
-- (on the 60-day history bench, 938 of 1,114, from 2.7 M rows instead of 9.6 M); only
-- the others rank their fine bins, and those that fail there too rank exactly.
binary_adaptive_window_groups as (
    select distinct group_key, ranking_bins
    from binary_binned_window_groups
    where ranking_method = 'adaptive'
),

binary_coarse_window_scores as (
    select group_key, coarse_bin as score,
        cast(sum(n_pos) as {{ dbt.type_bigint() }}) as n_pos,
        cast(sum(n_neg) as {{ dbt.type_bigint() }}) as n_neg
    from (
        select scores.*, floor(round(scores.score * groups.ranking_bins) / 4) as coarse_bin
        from binary_binned_window_scores as scores
        inner join binary_adaptive_window_groups as groups on groups.group_key = scores.group_key
    ) as fine
    group by group_key, coarse_bin
),

binary_coarse_window_ranking as {{ computed_once() }} (
    select * from {{ ranking_metrics('binary_coarse_window_scores', bounds=true) }}
),

binary_coarse_window_stands as (
    select coarse.*
    from binary_coarse_window_ranking as coarse
    where {{ binned_ranking_stands('coarse') }}
),

binary_fine_window_scores as (
    select scores.*
    from binary_binned_window_scores as scores
    where not exists (
        select 1 from binary_coarse_window_stands as coarse where coarse.group_key = scores.group_key
    )
),

binary_binned_window_ranking as {{ computed_once() }} (
    select * from {{ ranking_metrics('binary_fine_window_scores', bounds=true) }}
    union all
    select * from binary_coarse_window_stands
),
{%- else %}

binary_binned_{{ part }}_ranking as {{ computed_once() }} (
    select * from {{ ranking_metrics('binary_binned_' ~ part ~ '_scores', bounds=true) }}
),
{%- endif %}

-- Groups ranked exactly: those of exact models, the small ones, and those whose binned
-- answer could change a decision.
binary_exact_{{ part }}_groups as {{ computed_once() }} (
    select groups.*
    from binary_ranked_{{ part }}_days as groups
    left join binary_binned_{{ part }}_ranking as binned on binned.group_key = groups.group_key
    where groups.ranking_method = 'exact'
        or (groups.ranking_method = 'adaptive'
            {%- if part == 'window' %}
            and (binned.group_key is null or not coalesce({{ binned_ranking_stands('binned') }}, false))
            {%- endif %})
),

binary_exact_{{ part }}_scores as (
    {{ scores_per_group('binary_score_days', 'binary_exact_' ~ part ~ '_groups') }}
),

binary_{{ part }}_ranking as (
    select * from {{ ranking_metrics('binary_exact_' ~ part ~ '_scores') }}
    union all
    select binned.*
    from binary_binned_{{ part }}_ranking as binned
    where not exists (
        select 1 from binary_exact_{{ part }}_groups as exact_groups where exact_groups.group_key = binned.group_key
    )
),
{%- endfor %}

window_metrics as (
    select * from {{ binary_metrics('binary_window_days', 'binary_window_ranking', window_groups) }}
    union all
    select * from {{ regression_metrics('regression_window_days', window_groups) }}
    union all
    select * from {{ multiclass_metrics('multiclass_window_days', window_groups) }}
),

-- All versions' ranking metrics in a single-version window: the version's own.
window_metrics_complete as (
    select
        window_metrics.model_name,
        window_metrics.version_group,
        window_metrics.window_end,
        window_metrics.window_days,
        window_metrics.segment,
        window_metrics.segment_value,
        window_metrics.metric,
        case when own.metric is null then window_metrics.value else own.value end as value,
        case when own.metric is null then window_metrics.ci_low else own.ci_low end as ci_low,
        case when own.metric is null then window_metrics.ci_high else own.ci_high end as ci_high,
        case when own.metric is null then window_metrics.ranking_method else own.ranking_method end as ranking_method,
        case when own.metric is null then window_metrics.ranking_error_bound else own.ranking_error_bound end
            as ranking_error_bound,
        window_metrics.n_predictions,
        window_metrics.n_labeled
    from window_metrics
    left join binary_single_version_windows as single_version
        on single_version.model_name = window_metrics.model_name
        and single_version.window_end = window_metrics.window_end
        and single_version.window_days = window_metrics.window_days
        and window_metrics.version_group = '__all__'
        and window_metrics.metric in ('roc_auc', 'pr_auc')
    left join window_metrics as own
        on own.model_name = single_version.model_name
        and own.version_group = single_version.only_version
        and own.window_end = window_metrics.window_end
        and own.window_days = window_metrics.window_days
        and own.segment = window_metrics.segment
        and own.segment_value = window_metrics.segment_value
        and own.metric = window_metrics.metric
),

reference_metrics as (
    select * from {{ binary_metrics('binary_reference_days', 'binary_reference_ranking', reference_groups) }}
    union all
    select * from {{ regression_metrics('regression_reference_days', reference_groups) }}
    union all
    select * from {{ multiclass_metrics('multiclass_reference_days', reference_groups) }}
)

select
    window_metrics_complete.model_name,
    window_metrics_complete.version_group as model_version,
    window_metrics_complete.window_days,
    window_metrics_complete.window_end,
    window_metrics_complete.segment,
    window_metrics_complete.segment_value,
    window_metrics_complete.metric,
    window_metrics_complete.value,
    window_metrics_complete.n_predictions,
    window_metrics_complete.n_labeled,
    {{ safe_divide('window_metrics_complete.n_labeled', 'window_metrics_complete.n_predictions') }} as label_coverage,
    window_metrics_complete.ci_low,
    window_metrics_complete.ci_high,
    reference_metrics.value as reference_value,
    -- ROC AUC and PR AUC: 'exact' or 'binned' (macros/ranking.sql), and how far the exact
    -- value can be from a binned one (0 when exact); NULL for the other metrics.
    window_metrics_complete.ranking_method,
    window_metrics_complete.ranking_error_bound
from window_metrics_complete
inner join window_ends
    on window_ends.model_name = window_metrics_complete.model_name
    and window_ends.window_days = window_metrics_complete.window_days
    and window_ends.window_end = window_metrics_complete.window_end
left join reference_metrics
    on reference_metrics.model_name = window_metrics_complete.model_name
    and reference_metrics.reference_until = window_ends.reference_until
    and reference_metrics.segment = window_metrics_complete.segment
    and reference_metrics.segment_value = window_metrics_complete.segment_value
    and reference_metrics.metric = window_metrics_complete.metric
