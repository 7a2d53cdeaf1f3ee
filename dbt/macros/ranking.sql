{#- ROC AUC and PR AUC of binary models, exactly or from score bins (issue 21).

    A window's ranking metrics need its labeled scores in order. Sorting every distinct
    score of every window of the label horizon, every night, is what made a night grow
    with volume x horizon. So a score also counts in one of `bins` equal bins of [0, 1]
    (its lower edge; 1.0 falls in the last bin), and how a group ranks follows the
    model's configuration (ranking_bins):

      exact     every group ranks its scores exactly.
      binned    every group ranks its bins (ranking_bins: N).
      adaptive  the default. A group with at most `bins` labeled rows ranks exactly
                (bins would not make it cheaper). A larger one ranks its bins, and keeps
                that answer only when both bounds below are under a tenth of the
                interval's half-width (so the binning cannot change a decision);
                otherwise it ranks exactly. A window first ranks a quarter of the bins
                (marts/performance.sql), and its fine bins only where that fails.

    The bounds are proven, not estimated. Binned ranking loses only the order inside a
    bin:
      ROC AUC   a positive-negative pair in the same bin counts one half; the exact AUC
                counts it 0 or 1. |exact - binned| <= tied pairs / (2 P N).
      PR AUC    average precision is largest when each bin's positives come first and
                smallest when its negatives do (moving a positive ahead of a negative
                never lowers a precision); the exact value and the binned one (the bin
                as one threshold, as scikit-learn treats ties) both lie between the two.
                The bound is the larger distance from the binned value to either end.
    A binned row's interval is widened by its bound. -#}

{#- The bins of an adaptive model: mlwatch.config.ADAPTIVE_RANKING_BINS. -#}
{% macro default_ranking_bins() -%}10000{%- endmacro %}

{#- Per binary model: {'method': exact | binned | adaptive, 'bins': N}. -#}
{% macro ranking_of_models() -%}
    {%- set ranking = {} -%}
    {%- for name, m in var('models').items() if m.task == 'binary_classification' -%}
        {%- do ranking.update({name: m.ranking or {'method': 'exact', 'bins': default_ranking_bins() | int}}) -%}
    {%- endfor -%}
    {{- return(ranking) -}}
{%- endmacro %}

{#- One ranking setting of a model (`key`: method or bins), a SQL expression over
    model_name; `otherwise` for the models that are not binary, or when none is. -#}
{% macro _ranking_setting_of(model_name, key, otherwise) -%}
    {%- set ranking = ranking_of_models() -%}
    {%- if not ranking -%}
    {{ otherwise }}
    {%- else -%}
    case {{ model_name }}
    {%- for name, r in ranking.items() %}
        when {{ sql_literal(name) }} then {{ sql_literal(r[key]) }}
    {%- endfor %}
        else {{ otherwise }}
    end
    {%- endif -%}
{%- endmacro %}

{#- The configured method of a model (a SQL expression over model_name). -#}
{% macro ranking_method_of(model_name) -%}
    {{ _ranking_setting_of(model_name, 'method', "cast('exact' as " ~ dbt.type_string() ~ ")") }}
{%- endmacro %}

{#- The number of bins of a model (a SQL expression over model_name). -#}
{% macro ranking_bins_of(model_name) -%}
    {{ _ranking_setting_of(model_name, 'bins', default_ranking_bins()) }}
{%- endmacro %}

{#- The lower edge of a score's bin among `bins` equal bins of [0, 1]. -#}
{% macro score_bin(score, bins) -%}
    least(floor({{ score }} * {{ bins }}), {{ bins }} - 1) / ({{ bins }} * {{ double_literal('1.0') }})
{%- endmacro %}

{#- H(a + p) - H(a), the harmonic numbers' gap, from digamma's expansion
    psi(x) = ln x - 1/(2x) - 1/(12x^2) + ..., for a >= 0 and p >= 1; the next term bounds
    the error by harmonic_gap_error(a). The logarithm of a ratio keeps it accurate when
    p is much smaller than a. -#}
{% macro harmonic_gap(a, p) -%}
    (ln(({{ a }} + {{ p }} + 1) * {{ double_literal('1.0') }} / ({{ a }} + 1))
     + {{ p }} / ({{ double_literal('2.0') }} * ({{ a }} + 1) * ({{ a }} + {{ p }} + 1))
     + 1 / ({{ double_literal('12.0') }} * ({{ a }} + 1) * ({{ a }} + 1))
     - 1 / ({{ double_literal('12.0') }} * ({{ a }} + {{ p }} + 1) * ({{ a }} + {{ p }} + 1)))
{%- endmacro %}

{% macro harmonic_gap_error(a) -%}
    (1 / ({{ double_literal('60.0') }} * ({{ a }} + 1) * ({{ a }} + 1) * ({{ a }} + 1) * ({{ a }} + 1)))
{%- endmacro %}

{#- Per group: ROC AUC with DeLong's variance and average precision, from a relation of
    (group_key, score, n_pos, n_neg) with one row per group and distinct score (or bin).
    With bounds, also roc_bound and pr_bound (above); otherwise both are 0. -#}
{% macro ranking_metrics(scores_relation, bounds=false) -%}
(
    with score_counts as (
        select group_key, score, n_pos, n_neg
        from {{ scores_relation }}
    ),

    cumulated as (
        select
            group_key,
            n_pos,
            n_neg,
            sum(n_pos) over (partition by group_key order by score rows between unbounded preceding and current row)
                as pos_at_or_below,
            sum(n_neg) over (partition by group_key order by score rows between unbounded preceding and current row)
                as neg_at_or_below,
            sum(n_pos) over (partition by group_key) as total_pos,
            sum(n_neg) over (partition by group_key) as total_neg
        from score_counts
    ),

    -- Per distinct score: negatives strictly below and above, positives strictly above.
    ranked as (
        select
            group_key,
            n_pos,
            n_neg,
            total_pos,
            total_neg,
            neg_at_or_below - n_neg as neg_below,
            total_neg - neg_at_or_below as neg_above,
            total_pos - pos_at_or_below as pos_above
        from cumulated
    ),

    -- Twice each positive's placement (negatives below it, ties counting one half, times
    -- two) and twice each negative's, summed as exact integers with their squares: the
    -- AUC is their mean, DeLong's variance their spread, in one pass and without the
    -- cancellation a floating-point sum of squares would risk.
    placements as (
        select
            ranked.*,
            cast(2 * neg_below + n_neg as decimal(38, 0)) as pos_placement,
            cast(2 * pos_above + n_pos as decimal(38, 0)) as neg_placement
        from ranked
    ),

    placement_sums as (
        select
            group_key,
            min(total_pos) as total_pos,
            min(total_neg) as total_neg,
            sum(n_pos * pos_placement) as pos_sum,
            sum(n_pos * pos_placement * pos_placement) as pos_sum_sq,
            sum(n_neg * neg_placement) as neg_sum,
            sum(n_neg * neg_placement * neg_placement) as neg_sum_sq,
            -- n_pos * precision <= n_pos: bound 2^38 labeled rows (see macros/exact_sums.sql).
            {{ exact_sum('case when n_pos > 0 then n_pos * (pos_above + n_pos) * ' ~ double_literal('1.0')
                ~ ' / (pos_above + n_pos + neg_above + n_neg) else 0 end', fixed_point_scale(38)) }} as precision_sum
            {%- if bounds %},
            -- Pairs of a positive and a negative in the same bin.
            sum(cast(n_pos as decimal(38, 0)) * n_neg) as tied_pairs,
            -- Average precision (times P) with each bin's positives first, and with its
            -- negatives first: sum over the bin's positives of (T + i) / (T + F + i),
            -- = p - F (H(T + F + p) - H(T + F)), T and F the positives and negatives above.
            {{ exact_sum('case when n_pos > 0 and neg_above > 0 then n_pos - neg_above * '
                ~ harmonic_gap('pos_above + neg_above', 'n_pos') ~ ' when n_pos > 0 then n_pos else 0 end',
                fixed_point_scale(38)) }} as precision_sum_best,
            {{ exact_sum('case when n_pos > 0 and neg_above + n_neg > 0 then n_pos - (neg_above + n_neg) * '
                ~ harmonic_gap('pos_above + neg_above + n_neg', 'n_pos') ~ ' when n_pos > 0 then n_pos else 0 end',
                fixed_point_scale(38)) }} as precision_sum_worst,
            {{ exact_sum('case when n_pos > 0 then (neg_above + n_neg) * ' ~ harmonic_gap_error('pos_above + neg_above')
                ~ ' else 0 end', fixed_point_scale(38)) }} as precision_sum_error
            {%- endif %}
        from placements
        group by group_key
    )

    select
        group_key,
        total_pos,
        total_neg,
        case when total_pos > 0 and total_neg > 0
            then pos_sum / ({{ double_literal('2.0') }} * total_pos * total_neg) end as roc_auc,
        case when total_pos > 0 then precision_sum / total_pos end as pr_auc,
        -- sum over positives of (placement / total_neg - auc)^2 is
        -- (P * pos_sum_sq - pos_sum^2) / (4 P N^2); likewise for the negatives.
        case when total_pos > 1 and total_neg > 1 then
            cast(total_pos * pos_sum_sq - pos_sum * pos_sum as {{ type_double() }})
                / ({{ double_literal('4.0') }} * total_pos * total_neg * total_neg) / (total_pos - 1) / total_pos
          + cast(total_neg * neg_sum_sq - neg_sum * neg_sum as {{ type_double() }})
                / ({{ double_literal('4.0') }} * total_neg * total_pos * total_pos) / (total_neg - 1) / total_neg
        end as roc_auc_variance,
        {%- if bounds %}
        case when total_pos > 0 and total_neg > 0
            then tied_pairs / ({{ double_literal('2.0') }} * total_pos * total_neg) else 0 end as roc_bound,
        case when total_pos > 0
            then (greatest(precision_sum_best - precision_sum, precision_sum - precision_sum_worst, 0)
                  + 2 * precision_sum_error) / total_pos else 0 end as pr_bound,
        cast('binned' as {{ dbt.type_string() }}) as ranking_method
        {%- else %}
        cast(0 as {{ type_double() }}) as roc_bound,
        cast(0 as {{ type_double() }}) as pr_bound,
        cast('exact' as {{ dbt.type_string() }}) as ranking_method
        {%- endif %}
    from placement_sums
)
{%- endmacro %}

{#- Does a binned group's answer stand? Both bounds under a tenth of the half-width of
    the interval the binned ranking itself gives (ROC AUC: DeLong; PR AUC: logit). `r`
    is a ranking_metrics() row. -#}
{% macro binned_ranking_stands(r) -%}
    {%- set n_pos = r ~ '.total_pos' -%}
    (
        {{ r }}.roc_auc_variance is not null
        and {{ r }}.roc_bound <= {{ double_literal('0.1') }} * {{ ci_z() }} * sqrt({{ r }}.roc_auc_variance)
        and {{ r }}.pr_auc > 0 and {{ r }}.pr_auc < 1
        and {{ r }}.pr_bound <= {{ double_literal('0.05') }} * (
            1 / (1 + exp(-(ln({{ r }}.pr_auc / (1 - {{ r }}.pr_auc))
                + {{ ci_z() }} / sqrt({{ n_pos }} * {{ r }}.pr_auc * (1 - {{ r }}.pr_auc)))))
            - 1 / (1 + exp(-(ln({{ r }}.pr_auc / (1 - {{ r }}.pr_auc))
                - {{ ci_z() }} / sqrt({{ n_pos }} * {{ r }}.pr_auc * (1 - {{ r }}.pr_auc))))))
    )
{%- endmacro %}

{#- Per ranked group and score, the positives and negatives of its day groups: `scores`
    has (day_key, score, n_pos, n_neg), `groups` (day_key, group_key, day_groups). A
    group of one day group takes its rows as they are; the others add them up. -#}
{% macro scores_per_group(scores, groups) -%}
    select groups.group_key, scores.score, scores.n_pos, scores.n_neg
    from {{ scores }} as scores
    inner join {{ groups }} as groups on groups.day_key = scores.day_key
    where groups.day_groups = 1
    union all
    select
        groups.group_key,
        scores.score,
        cast(sum(scores.n_pos) as {{ dbt.type_bigint() }}) as n_pos,
        cast(sum(scores.n_neg) as {{ dbt.type_bigint() }}) as n_neg
    from {{ scores }} as scores
    inner join {{ groups }} as groups on groups.day_key = scores.day_key
    where groups.day_groups > 1
    group by groups.group_key, scores.score
{%- endmacro %}

{#- Days since 2000-01-01: an integer to order and frame days by. -#}
{% macro day_number(date_expression) -%}
    {{ dbt.datediff("cast('2000-01-01' as date)", date_expression, 'day') }}
{%- endmacro %}
