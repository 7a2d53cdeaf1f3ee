{#- Calibration of binary scores for estimated performance (marts/performance_estimated.sql).

    Scores are first counted in fine equal bins of [0, 1]; the reference's labeled rows
    then pool consecutive fine bins into calibration bins of equal mass, separately for
    predicted positives and negatives (so that no bin straddles the decision), and an
    isotonic regression over those bins gives each its calibrated probability. -#}

{% macro calibration_fine_bins() -%}10000{%- endmacro %}

{#- Calibration bins on each side of the decision: each holds about 1% of the
    reference's labeled rows of that side. -#}
{% macro calibration_bins_per_side() -%}100{%- endmacro %}

{#- The index (0 .. fine bins - 1) of a score's fine bin. -#}
{% macro fine_score_bin(score) -%}
    cast(least(floor({{ score }} * {{ calibration_fine_bins() }}), {{ calibration_fine_bins() }} - 1) as integer)
{%- endmacro %}

{#- A window's estimate stops being trusted when more than this share of its predictions
    score outside the range the reference calibrated (extrapolation). A shift of the scores
    inside that range is what the method is for: on NannyML's car loan benchmark, windows
    whose score PSI (over the reference's tenths) passed 0.25 were estimated within 0.003
    ROC AUC of their realized value (bench/README.md), so score_psi is reported, not judged. -#}
{% macro estimate_max_share_outside() -%}0.05{%- endmacro %}

{#- Nor when more than this share of its predictions come from model versions that did not
    serve in the reference period: the calibration is another model's. -#}
{% macro estimate_max_share_unreferenced() -%}0.05{%- endmacro %}

{#- The sum of a floating-point term over a group, added in the order of `order_by` (unique
    in the group): the same rows give the same digits however the engine ordered them,
    so an estimate kept from an earlier night equals one computed again. Spark adds in
    its own order (its parity with DuckDB is to a relative 1e-9). -#}
{% macro ordered_sum(term, order_by) -%}
    {{ return(adapter.dispatch('ordered_sum', 'mlwatch')(term, order_by)) }}
{%- endmacro %}

{% macro default__ordered_sum(term, order_by) -%}
    list_sum(list(cast({{ term }} as {{ type_double() }}) order by {{ order_by }}))
{%- endmacro %}

{% macro spark__ordered_sum(term, order_by) -%}
    sum({{ term }})
{%- endmacro %}

{#- Per group: the performance its labels would show if the calibration holds, from
    `bins`, a relation with one row per group and calibration bin: group_columns,
    calibration_slice, position (the bin, NULL for predictions no bin covers),
    n_predictions, n_outside and n_unreferenced, joined here to the relation `calibration` of the
    calling model (model_name, calibration_slice, position, probability,
    is_predicted_positive, slice_labeled, psi_group, psi_group_share and psi_floor).

    Each prediction is a Bernoulli draw with its bin's calibrated probability p, so the
    expected confusion matrix sums n p and n (1 - p) over the bins, and the intervals are
    the spread of the realized value around that expectation (delta method; ROC AUC:
    Hanley and McNeil with the expected class counts). ROC AUC and average precision rank
    the bins by score, predictions within a bin tied, as NannyML's CBPE ranks rows by
    their uncalibrated score: with one probability per bin, its row-by-row sums over a
    bin are the closed forms below (average precision: the harmonic numbers' gap). -#}
{% macro estimated_binary_metrics(bins, group_columns) -%}
{%- set g = group_columns | join(', ') -%}
{%- set by_group = 'partition by ' ~ g %}
(
    with calibrated_bins as (
        select
            bins.*,
            calibration.probability as p,
            calibration.is_predicted_positive as predicted_positive,
            calibration.slice_labeled,
            calibration.psi_group,
            calibration.psi_group_share,
            calibration.psi_floor
        from {{ bins }} as bins
        left join calibration
            on calibration.model_name = bins.model_name
            and calibration.calibration_slice = bins.calibration_slice
            and calibration.position = bins.position
    ),

    -- Population stability of the scores against the reference's, over the calibration's
    -- ten groups of bins (each a tenth of the reference); an empty group counts as 0.01%.
    psi_groups as (
        select
            {{ g }},
            psi_group,
            min(psi_group_share) as reference_share,
            min(psi_floor) as psi_floor,
            sum(n_predictions) * {{ double_literal('1.0') }}
                / sum(sum(n_predictions)) over ({{ by_group }}) as window_share
        from calibrated_bins
        where p is not null
        group by {{ g }}, psi_group
    ),

    psi as (
        select
            {{ g }},
            -- The groups it fills, and (the floor less their part of it) those it leaves empty.
            {{ ordered_sum('(window_share - reference_share) * ln(greatest(window_share, 0.0001) / reference_share)'
                           ' - reference_share * ln(reference_share / 0.0001)', 'psi_group') }} + min(psi_floor) as score_psi
        from psi_groups
        group by {{ g }}
    ),

    -- Expected positives and predictions in the bins above each bin (higher scores).
    ranked as (
        select
            calibrated_bins.*,
            -- In fixed point (exact_sums.sql): a running sum of doubles depends on how the
            -- engine splits the frame; a bin holds at most 2^40 predictions.
            coalesce({{ from_fixed_point('sum(' ~ fixed_point('n_predictions * p', fixed_point_scale(40)) ~ ') over ('
                                         ~ by_group ~ ' order by position desc rows between unbounded preceding and 1 preceding)',
                                         fixed_point_scale(40)) }}, 0) as positives_above,
            coalesce(sum(n_predictions) over ({{ by_group }} order by position desc
                rows between unbounded preceding and 1 preceding), 0) as predictions_above
        from calibrated_bins
        where p is not null
    ),

    expected as (
        select
            {{ g }},
            sum(n_predictions) as n_mapped,
            {{ ordered_sum('n_predictions * p', 'position') }} as positives,
            {{ ordered_sum('n_predictions * (1 - p)', 'position') }} as negatives,
            {{ ordered_sum('case when predicted_positive = 1 then n_predictions * p else 0 end', 'position') }} as tp,
            {{ ordered_sum('case when predicted_positive = 1 then n_predictions * (1 - p) else 0 end', 'position') }} as fp,
            {{ ordered_sum('case when predicted_positive = 0 then n_predictions * p else 0 end', 'position') }} as fn,
            {{ ordered_sum('case when predicted_positive = 0 then n_predictions * (1 - p) else 0 end', 'position') }} as tn,
            {{ ordered_sum('case when predicted_positive = 1 then n_predictions * p * (1 - p) else 0 end', 'position') }}
                as tp_variance,
            {{ ordered_sum('case when predicted_positive = 0 then n_predictions * p * (1 - p) else 0 end', 'position') }}
                as fn_variance,
            {{ ordered_sum('n_predictions * (1 - p) * (positives_above + n_predictions * p / 2)', 'position') }}
                as ranked_pairs,
            {{ ordered_sum('p * (n_predictions * p + (positives_above - p * predictions_above) * '
                           ~ harmonic_gap('predictions_above', 'n_predictions') ~ ')', 'position') }} as precision_sum,
            min(slice_labeled) as slice_labeled
        from ranked
        group by {{ g }}
    ),

    counted as (
        select
            {{ g }},
            sum(n_predictions) as n_predictions,
            sum(case when p is null then n_predictions else n_outside end) as n_outside,
            sum(n_unreferenced) as n_unreferenced
        from calibrated_bins
        group by {{ g }}
    ),

    s as (
        select
            counted.*,
            expected.n_mapped,
            expected.positives,
            expected.negatives,
            expected.tp,
            expected.fp,
            expected.fn,
            expected.tn,
            expected.tp_variance,
            expected.fn_variance,
            psi.score_psi,
            expected.slice_labeled,
            {{ safe_divide('expected.ranked_pairs', 'expected.positives * expected.negatives') }} as roc_auc,
            {{ safe_divide('expected.precision_sum', 'expected.positives') }} as pr_auc
        from counted
        left join expected on {{ same_values('expected', 'counted', group_columns) }}
        left join psi on {{ same_values('psi', 'counted', group_columns) }}
    ),

    with_variance as (
        select
            s.*,
            {{ safe_divide('tp_variance + fn_variance', 'n_mapped * n_mapped') }} as accuracy_variance,
            {{ safe_divide('tp_variance', '(tp + fp) * (tp + fp)') }} as precision_variance,
            {{ safe_divide('fn * fn * tp_variance + tp * tp * fn_variance', '(tp + fn) * (tp + fn) * (tp + fn) * (tp + fn)') }}
                as recall_variance,
            {{ safe_divide('4 * ((tp + fp + fn) * (tp + fp + fn) * tp_variance + tp * tp * fn_variance)',
                           '(2 * tp + fp + fn) * (2 * tp + fp + fn) * (2 * tp + fp + fn) * (2 * tp + fp + fn)') }}
                as f1_variance,
            case when positives > 0 and negatives > 0 and roc_auc is not null then
                (roc_auc * (1 - roc_auc)
                 + (positives - 1) * (roc_auc / (2 - roc_auc) - roc_auc * roc_auc)
                 + (negatives - 1) * (2 * roc_auc * roc_auc / (1 + roc_auc) - roc_auc * roc_auc))
                / (positives * negatives)
            end as roc_auc_variance
        from s
    ),

    metrics as (
        {%- set plain = [
            ('accuracy', safe_divide('tp + tn', 'n_mapped'), 'accuracy_variance'),
            ('precision', safe_divide('tp', 'tp + fp'), 'precision_variance'),
            ('recall', safe_divide('tp', 'tp + fn'), 'recall_variance'),
            ('f1', safe_divide('2 * tp', '2 * tp + fp + fn'), 'f1_variance'),
            ('roc_auc', 'roc_auc', 'roc_auc_variance'),
        ] %}
        {%- for name, value, variance in plain %}
        select
            {{ g }}, n_predictions, n_outside, n_unreferenced, score_psi, slice_labeled,
            cast('{{ name }}' as {{ dbt.type_string() }}) as metric,
            {{ value }} as estimated_value,
            greatest(0, {{ value }} - {{ ci_z() }} * sqrt(greatest({{ variance }}, 0))) as ci_low,
            least(1, {{ value }} + {{ ci_z() }} * sqrt(greatest({{ variance }}, 0))) as ci_high
        from with_variance
        union all
        {%- endfor %}
        -- Average precision: the realized metric's logit interval, with the expected positives.
        select
            {{ g }}, n_predictions, n_outside, n_unreferenced, score_psi, slice_labeled,
            cast('pr_auc' as {{ dbt.type_string() }}) as metric,
            pr_auc as estimated_value,
            case when pr_auc > 0 and pr_auc < 1 then greatest(0, 1 / (1 + exp(-(ln(pr_auc / (1 - pr_auc))
                - {{ ci_z() }} / sqrt(positives * pr_auc * (1 - pr_auc)))))) end as ci_low,
            case when pr_auc > 0 and pr_auc < 1 then least(1, 1 / (1 + exp(-(ln(pr_auc / (1 - pr_auc))
                + {{ ci_z() }} / sqrt(positives * pr_auc * (1 - pr_auc)))))) end as ci_high
        from with_variance
    )

    select * from metrics
)
{%- endmacro %}
