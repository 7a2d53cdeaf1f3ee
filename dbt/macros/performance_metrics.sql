{#- Performance metrics and their confidence intervals, from additive daily counts.

    Each macro takes relations with one row per group (group_columns) and day (for the
    binary ranking metrics, a second relation: group_key, the group's group_key() over
    group_columns, and score, n_pos, n_neg per distinct score) and returns one row per
    group and metric:
    group_columns..., metric, value, ci_low, ci_high, n_predictions, n_labeled.
    A value is NULL when the group has fewer labeled rows than min_labeled_rows.

    Intervals (95%):
      accuracy, precision, recall, positive_rate   Wilson score interval
      f1                 Wilson interval of tp / (tp + (fp + fn) / 2), which equals F1
      roc_auc            DeLong: variance from the per-positive and per-negative
                         placement values (ties count one half), normal interval
                         (binned ranking, macros/ranking.sql: widened by the binning's bound)
      pr_auc             logit interval (Boyd et al. 2013), n = number of positives
      weighted_recall    ratio estimator, delta-method variance
      log_loss, brier, mae, mape   normal interval of a mean
      rmse               normal interval of the mean squared error, square-rooted
      r2                 1 - (MSE interval) * n / total sum of squares
-#}

{% macro _group_join(left, right, group_columns) -%}
    {%- for column in group_columns -%}
    {{ left }}.{{ column }} = {{ right }}.{{ column }}{% if not loop.last %} and {% endif %}
    {%- endfor -%}
{%- endmacro %}

{% macro _prefixed(alias, group_columns) -%}
    {%- for column in group_columns -%}{{ alias }}.{{ column }}{% if not loop.last %}, {% endif %}{%- endfor -%}
{%- endmacro %}

{#- A metric row is (name, value, ci_low, ci_high) or, for the ranking metrics,
    (name, value, ci_low, ci_high, ranking_method, ranking_error_bound). -#}
{% macro _ranking_of(row) -%}
    {{- return((row[4], row[5]) if row | length > 4 else ('null', 'null')) -}}
{%- endmacro %}

{% macro _metric_row(group_columns, row) -%}
    {%- set name, value, ci_low, ci_high = row[:4] -%}
    {%- set method, bound = _ranking_of(row) -%}
    select
        {{ _prefixed('s', group_columns) }},
        cast('{{ name }}' as {{ dbt.type_string() }}) as metric,
        cast({{ value }} as {{ type_double() }}) as value,
        cast({{ ci_low }} as {{ type_double() }}) as ci_low,
        cast({{ ci_high }} as {{ type_double() }}) as ci_high,
        cast(s.n_predictions as {{ dbt.type_bigint() }}) as n_predictions,
        cast(s.n_labeled as {{ dbt.type_bigint() }}) as n_labeled,
        cast({{ method }} as {{ dbt.type_string() }}) as ranking_method,
        cast({{ bound }} as {{ type_double() }}) as ranking_error_bound
    from stats as s
{%- endmacro %}

{#- The metric rows of a group: one row per metric tuple (above) over `stats`. -#}
{% macro metric_rows(group_columns, rows) -%}
    {{ return(adapter.dispatch('metric_rows', 'mlwatch')(group_columns, rows)) }}
{%- endmacro %}

{% macro default__metric_rows(group_columns, rows) -%}
    {%- set selects = [] -%}
    {%- for row in rows -%}
        {%- do selects.append(_metric_row(group_columns, row)) -%}
    {%- endfor -%}
    {{ return(selects | join('\n    union all\n    ')) }}
{%- endmacro %}

{#- A metric that is the mean of a per-row term, with the normal interval of a mean:
    (name, value, ci_low, ci_high) for metric_rows. `total` and `total_sq` are the sums of
    the term and of its square over the labeled rows; at_least_zero clips the lower bound
    of a term that cannot be negative. -#}
{% macro _mean_metric(name, total, total_sq, condition='s.enough', at_least_zero=false) -%}
    {%- set mean = total ~ ' / s.n_labeled' -%}
    {%- set margin = ci_z() ~ ' * ' ~ mean_standard_error('s.n_labeled', total, total_sq) -%}
    {%- set low = mean ~ ' - ' ~ margin -%}
    {{ return((name,
        'case when ' ~ condition ~ ' then ' ~ mean ~ ' end',
        'case when ' ~ condition ~ ' then ' ~ ('greatest(0, ' ~ low ~ ')' if at_least_zero else low) ~ ' end',
        'case when ' ~ condition ~ ' then ' ~ mean ~ ' + ' ~ margin ~ ' end')) }}
{%- endmacro %}

{#- A metric that is a proportion successes / trials, with its Wilson score interval:
    (name, value, ci_low, ci_high) for metric_rows. -#}
{% macro _proportion_metric(name, successes, trials, condition='s.enough') -%}
    {{ return((name,
        'case when ' ~ condition ~ ' then ' ~ safe_divide(successes, trials) ~ ' end',
        'case when ' ~ condition ~ ' then ' ~ wilson_low(successes, trials) ~ ' end',
        'case when ' ~ condition ~ ' then ' ~ wilson_high(successes, trials) ~ ' end')) }}
{%- endmacro %}

{% macro binary_metrics(sums_relation, ranking_relation, group_columns) -%}
{%- set g = group_columns | join(', ') -%}
(
    with day_counts as (
        select * from {{ sums_relation }}
    ),

    totals as (
        select
            {{ g }},
            {{ group_key(group_columns) }} as group_key,
            min(min_labeled_rows) as min_labeled_rows,
            sum(n_predictions) as n_predictions,
            sum(n_labeled) as n_labeled,
            sum(n_pos) as n_pos,
            sum(n_neg) as n_neg,
            sum(n_predicted_positive) as n_predicted_positive,
            sum(n_tp) as n_tp,
            sum(n_fp) as n_fp,
            sum(n_fn) as n_fn,
            sum(n_tn) as n_tn,
            -- The daily sums are exact fixed-point decimals (int_binary_daily): summed
            -- exactly, then turned into doubles.
            {{ from_fixed_point('sum(sum_log_loss)', log_loss_scale()) }} as sum_log_loss,
            {{ from_fixed_point('sum(sum_log_loss_sq)', log_loss_square_scale()) }} as sum_log_loss_sq,
            {{ from_fixed_point('sum(sum_brier)', unit_scale()) }} as sum_brier,
            {{ from_fixed_point('sum(sum_brier_sq)', unit_scale()) }} as sum_brier_sq,
            {{ from_fixed_point('sum(w_pos)', 'min(weight_scale)') }} as w_pos,
            {{ from_fixed_point('sum(w_tp)', 'min(weight_scale)') }} as w_tp,
            {{ from_fixed_point('sum(w2_pos)', 'min(weight_square_scale)') }} as w2_pos,
            {{ from_fixed_point('sum(w2_tp)', 'min(weight_square_scale)') }} as w2_tp
        from day_counts
        group by {{ g }}
    ),

    -- ROC AUC and PR AUC per group (macros/ranking.sql): exact or binned, with the
    -- binning's bound (0 when exact).
    ranking as (
        select * from {{ ranking_relation }}
    ),

    stats as (
        select
            t.*,
            t.n_labeled >= t.min_labeled_rows as enough,
            ranking.roc_auc,
            ranking.pr_auc,
            ranking.roc_auc_variance,
            ranking.roc_bound,
            ranking.pr_bound,
            ranking.ranking_method,
            {{ safe_divide('t.w_tp', 't.w_pos') }} as weighted_recall
        from totals as t
        left join ranking on ranking.group_key = t.group_key
    )

    {{ metric_rows(group_columns, [
        ('roc_auc',
            'case when s.enough then s.roc_auc end',
            'case when s.enough then greatest(0, s.roc_auc - ' ~ ci_z() ~ ' * sqrt(s.roc_auc_variance) - s.roc_bound) end',
            'case when s.enough then least(1, s.roc_auc + ' ~ ci_z() ~ ' * sqrt(s.roc_auc_variance) + s.roc_bound) end',
            'case when s.enough then s.ranking_method end',
            'case when s.enough then s.roc_bound end'),
        ('pr_auc',
            'case when s.enough then s.pr_auc end',
            'case when s.enough and s.pr_auc > 0 and s.pr_auc < 1 then greatest(0, 1 / (1 + exp(-(ln(s.pr_auc / (1 - s.pr_auc)) - '
                ~ ci_z() ~ ' / sqrt(s.n_pos * s.pr_auc * (1 - s.pr_auc))))) - s.pr_bound) end',
            'case when s.enough and s.pr_auc > 0 and s.pr_auc < 1 then least(1, 1 / (1 + exp(-(ln(s.pr_auc / (1 - s.pr_auc)) + '
                ~ ci_z() ~ ' / sqrt(s.n_pos * s.pr_auc * (1 - s.pr_auc))))) + s.pr_bound) end',
            'case when s.enough then s.ranking_method end',
            'case when s.enough then s.pr_bound end'),
        _proportion_metric('accuracy', 's.n_tp + s.n_tn', 's.n_labeled'),
        _proportion_metric('precision', 's.n_tp', 's.n_tp + s.n_fp'),
        _proportion_metric('recall', 's.n_tp', 's.n_tp + s.n_fn'),
        ('f1',
            'case when s.enough then ' ~ safe_divide('2 * s.n_tp', '2 * s.n_tp + s.n_fp + s.n_fn') ~ ' end',
            'case when s.enough then ' ~ wilson_low('s.n_tp', 's.n_tp + (s.n_fp + s.n_fn) / ' ~ double_literal('2.0')) ~ ' end',
            'case when s.enough then ' ~ wilson_high('s.n_tp', 's.n_tp + (s.n_fp + s.n_fn) / ' ~ double_literal('2.0')) ~ ' end'),
        _mean_metric('log_loss', 's.sum_log_loss', 's.sum_log_loss_sq'),
        _mean_metric('brier', 's.sum_brier', 's.sum_brier_sq', at_least_zero=true),
        _proportion_metric('positive_rate', 's.n_predicted_positive', 's.n_predictions',
            condition='s.n_predictions >= s.min_labeled_rows'),
        ('weighted_recall',
            'case when s.enough then s.weighted_recall end',
            'case when s.enough and s.w_pos > 0 then greatest(0, s.weighted_recall - ' ~ ci_z() ~ ' * sqrt(greatest(0, '
                ~ 's.w2_tp * (1 - s.weighted_recall) * (1 - s.weighted_recall) + (s.w2_pos - s.w2_tp) * s.weighted_recall * s.weighted_recall'
                ~ ')) / s.w_pos) end',
            'case when s.enough and s.w_pos > 0 then least(1, s.weighted_recall + ' ~ ci_z() ~ ' * sqrt(greatest(0, '
                ~ 's.w2_tp * (1 - s.weighted_recall) * (1 - s.weighted_recall) + (s.w2_pos - s.w2_tp) * s.weighted_recall * s.weighted_recall'
                ~ ')) / s.w_pos) end')
    ]) }}
)
{%- endmacro %}

{% macro regression_metrics(relation, group_columns) -%}
{%- set g = group_columns | join(', ') -%}
(
    with day_sums as (
        select * from {{ relation }}
    ),

    totals as (
        select
            {{ g }},
            min(min_labeled_rows) as min_labeled_rows,
            sum(n_predictions) as n_predictions,
            sum(n_labeled) as n_labeled,
            -- The daily sums are exact fixed-point decimals (int_regression_daily): summed
            -- exactly, then turned into doubles.
            {{ from_fixed_point('sum(sum_abs_error)', 'min(error_scale)') }} as sum_abs_error,
            {{ from_fixed_point('sum(sum_squared_error)', 'min(squared_error_scale)') }} as sum_squared_error,
            {{ from_fixed_point('sum(sum_squared_error_sq)', 'min(squared_error_square_scale)') }} as sum_squared_error_sq,
            {{ from_fixed_point('sum(sum_ape)', 'min(ape_scale)') }} as sum_ape,
            {{ from_fixed_point('sum(sum_ape_sq)', 'min(ape_square_scale)') }} as sum_ape_sq,
            {{ safe_divide(from_fixed_point('sum(sum_label)', 'min(label_scale)'), 'sum(n_labeled)') }} as mean_label
        from day_sums
        group by {{ g }}
    ),

    -- Chan et al.: each day's sum of squared deviations plus n (day mean - mean)^2, at
    -- the deviations' fixed-point scale (a day's term is at most n times a row's bound).
    spread as (
        select
            {{ _prefixed('t', group_columns) }},
            {{ from_fixed_point(
                'sum(d.m2_label + ' ~ fixed_point('d.n_labeled * (d.mean_label - t.mean_label) * (d.mean_label - t.mean_label)', 'd.deviation_scale') ~ ')',
                'min(d.deviation_scale)') }} as total_sum_squares
        from totals as t
        inner join day_sums as d on {{ _group_join('t', 'd', group_columns) }}
        where d.n_labeled > 0
        group by {{ _prefixed('t', group_columns) }}
    ),

    stats as (
        select
            t.*,
            spread.total_sum_squares,
            t.n_labeled >= t.min_labeled_rows as enough,
            {{ safe_divide('t.sum_squared_error', 't.n_labeled') }} as mse,
            {{ mean_standard_error('t.n_labeled', 't.sum_squared_error', 't.sum_squared_error_sq') }} as mse_se
        from totals as t
        left join spread on {{ _group_join('t', 'spread', group_columns) }}
    )

    {{ metric_rows(group_columns, [
        _mean_metric('mae', 's.sum_abs_error', 's.sum_squared_error', at_least_zero=true),
        ('rmse',
            'case when s.enough then sqrt(s.mse) end',
            'case when s.enough then sqrt(greatest(0, s.mse - ' ~ ci_z() ~ ' * s.mse_se)) end',
            'case when s.enough then sqrt(s.mse + ' ~ ci_z() ~ ' * s.mse_se) end'),
        _mean_metric('mape', 's.sum_ape', 's.sum_ape_sq', at_least_zero=true),
        ('r2',
            'case when s.enough and s.total_sum_squares > 0 then 1 - s.sum_squared_error / s.total_sum_squares end',
            'case when s.enough and s.total_sum_squares > 0 then 1 - (s.mse + ' ~ ci_z() ~ ' * s.mse_se) * s.n_labeled / s.total_sum_squares end',
            'case when s.enough and s.total_sum_squares > 0 then 1 - greatest(0, s.mse - ' ~ ci_z() ~ ' * s.mse_se) * s.n_labeled / s.total_sum_squares end')
    ]) }}
)
{%- endmacro %}

{#- Multiclass: accuracy (Wilson), macro F1 over the classes present among the labeled
    rows' true and predicted classes (as scikit-learn's f1_score(average='macro')), with
    a normal interval whose variance sums the classes' Wilson-style variances
    F1_c (1 - F1_c) / (tp_c + (fp_c + fn_c) / 2) divided by the number of classes squared
    (treating classes as independent), and log loss from the true class's probability
    (NULL unless every labeled row carries one). -#}
{% macro multiclass_metrics(relation, group_columns) -%}
{%- set g = group_columns | join(', ') -%}
(
    with cells as (
        select
            {{ g }},
            true_class,
            predicted_class,
            min(min_labeled_rows) as min_labeled_rows,
            sum(n_predictions) as n_predictions,
            sum(n_labeled) as n_labeled,
            sum(n_with_probability) as n_with_probability,
            sum(sum_log_loss) as sum_log_loss,
            sum(sum_log_loss_sq) as sum_log_loss_sq
        from {{ relation }}
        group by {{ g }}, true_class, predicted_class
    ),

    totals as (
        select
            {{ g }},
            min(min_labeled_rows) as min_labeled_rows,
            sum(n_predictions) as n_predictions,
            sum(n_labeled) as n_labeled,
            sum(case when true_class = predicted_class then n_labeled else 0 end) as n_correct,
            sum(n_with_probability) as n_with_probability,
            {{ from_fixed_point('sum(sum_log_loss)', log_loss_scale()) }} as sum_log_loss,
            {{ from_fixed_point('sum(sum_log_loss_sq)', log_loss_square_scale()) }} as sum_log_loss_sq
        from cells
        group by {{ g }}
    ),

    classes as (
        select {{ g }}, true_class as class from cells where true_class is not null
        union
        select {{ g }}, predicted_class as class from cells where true_class is not null and predicted_class is not null
    ),

    per_class as (
        select
            {{ _prefixed('c', group_columns) }},
            c.class,
            sum(case when x.true_class = c.class and x.predicted_class = c.class then x.n_labeled else 0 end) as tp,
            sum(case when x.true_class <> c.class and x.predicted_class = c.class then x.n_labeled else 0 end) as fp,
            sum(case when x.true_class = c.class and (x.predicted_class is null or x.predicted_class <> c.class)
                then x.n_labeled else 0 end) as fn
        from classes as c
        inner join cells as x on {{ _group_join('c', 'x', group_columns) }} and x.true_class is not null
        group by {{ _prefixed('c', group_columns) }}, c.class
    ),

    class_f1 as (
        select
            per_class.*,
            {{ double_literal('2.0') }} * tp / (2 * tp + fp + fn) as f1
        from per_class
    ),

    macro as (
        select
            {{ g }},
            -- Exact sums (macros/exact_sums.sql): F1 <= 1, and a class's variance term
            -- F1 (1 - F1) / (tp + (fp + fn) / 2) <= 1/4 / (1/2).
            {{ exact_sum('f1', unit_scale()) }} / count(f1) as macro_f1,
            {{ exact_sum('case when tp + (fp + fn) / ' ~ double_literal('2.0') ~ ' > 0 then f1 * (1 - f1) / (tp + (fp + fn) / '
                ~ double_literal('2.0') ~ ') else 0 end', unit_scale()) }}
                / (count(*) * count(*)) as macro_f1_variance
        from class_f1
        group by {{ g }}
    ),

    stats as (
        select
            t.*,
            t.n_labeled >= t.min_labeled_rows as enough,
            macro.macro_f1,
            macro.macro_f1_variance
        from totals as t
        left join macro on {{ _group_join('t', 'macro', group_columns) }}
    )

    {{ metric_rows(group_columns, [
        _proportion_metric('accuracy', 's.n_correct', 's.n_labeled'),
        ('macro_f1',
            'case when s.enough then s.macro_f1 end',
            'case when s.enough then greatest(0, s.macro_f1 - ' ~ ci_z() ~ ' * sqrt(s.macro_f1_variance)) end',
            'case when s.enough then least(1, s.macro_f1 + ' ~ ci_z() ~ ' * sqrt(s.macro_f1_variance)) end'),
        _mean_metric('log_loss', 's.sum_log_loss', 's.sum_log_loss_sq',
            condition='s.enough and s.n_with_probability = s.n_labeled')
    ]) }}
)
{%- endmacro %}
