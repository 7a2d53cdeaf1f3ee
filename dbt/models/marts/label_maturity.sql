{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook=["{{ replace_range('prediction_day', first_window_end(), run_date()) }}", "{{ use_all_cores() }}"],
        post_hook="{{ use_one_core() }}",
    )
}}
{#- Integer counts and ratios of them only: the same numbers on any number of threads,
    so the model runs on every core (macros/exact_sums.sql). -#}

{#- How labeled each day's predictions are, next to how labeled they should be by now.

    A day is judged as known on min(run date, day + label_delay_days): after its label
    horizon nothing about it changes. expected_coverage is the share of the reference
    period's predictions whose first label had arrived at the same age, so a window with
    30% of its labels can be told apart as "on schedule" or "labels are late". -#}

with labeled as (
    select * from {{ ref('int_predictions_labeled') }}
),

days as (
    select
        model_name,
        prediction_day,
        min(label_delay_days) as label_delay_days,
        count(*) as n_predictions,
        sum(case when is_labeled then 1 else 0 end) as n_labeled
    from labeled
    where prediction_day between {{ first_window_end() }} and {{ run_date() }}
    group by model_name, prediction_day
),

as_of as (
    select
        days.*,
        least({{ run_date() }}, {{ add_days('days.label_delay_days', 'days.prediction_day') }}) as known_on
    from days
),

aged as (
    select as_of.*, {{ dbt.datediff('as_of.prediction_day', 'as_of.known_on', 'day') }} as age_days
    from as_of
),

reference_arrivals as (
    select
        model_name,
        prediction_day as reference_day,
        {{ dbt.datediff('prediction_day', 'cast(first_labeled_at as date)', 'day') }} as arrival_age,
        count(*) as n
    from labeled
    where prediction_day between reference_start and reference_end
    group by 1, 2, 3
),

expected as (
    select
        aged.model_name,
        aged.prediction_day,
        {{ safe_divide(
            'sum(case when reference_arrivals.arrival_age <= aged.age_days then reference_arrivals.n else 0 end)',
            'sum(reference_arrivals.n)') }} as expected_coverage
    from aged
    inner join reference_arrivals
        on reference_arrivals.model_name = aged.model_name
        and {{ add_days('aged.age_days', 'reference_arrivals.reference_day') }} <= aged.known_on
    group by aged.model_name, aged.prediction_day
)

select
    aged.model_name,
    aged.prediction_day,
    aged.known_on,
    aged.age_days,
    aged.label_delay_days,
    aged.age_days >= aged.label_delay_days as is_mature,
    cast(aged.n_predictions as {{ dbt.type_bigint() }}) as n_predictions,
    cast(aged.n_labeled as {{ dbt.type_bigint() }}) as n_labeled,
    {{ safe_divide('aged.n_labeled', 'aged.n_predictions') }} as label_coverage,
    expected.expected_coverage
from aged
left join expected
    on expected.model_name = aged.model_name and expected.prediction_day = aged.prediction_day
