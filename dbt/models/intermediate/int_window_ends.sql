{%- set windows = [1] -%}
{%- for name, m in var('models').items() -%}{%- do windows.append(m.windows | max) -%}{%- endfor -%}
{%- set max_window = windows | max -%}
{#- The (model, trailing window, window end) rows this invocation recomputes: every
    window ending from the first window end minus the label horizon to the run date
    (on a backtest night, the ends it reads: macros/run_range.sql), and never before the
    model's first prediction. Each carries the slice of the
    reference period that lies before its end (see marts/performance.sql) and the basis
    period that decides its segment buckets (see int_segment_buckets). -#}

with calendar as (
    {{ calendar(first_window_end_iso(), run_date_iso(), 'window_end') }}
),

windows as (
    select * from {{ ref('stg_config__windows') }}
),

models as (
    select * from {{ ref('stg_config__models') }}
),

first_days as (
    select model_name, min(prediction_day) as first_day
    from {{ ref('int_predictions_in_scope') }}
    group by model_name
)

select
    windows.model_name,
    windows.window_days,
    calendar.window_end,
    {{ add_days('1 - windows.window_days', 'calendar.window_end') }} as window_start,
    models.reference_start,
    case
        when calendar.window_end >= models.reference_start
            then least(models.reference_end, calendar.window_end)
    end as reference_until,
    case
        when calendar.window_end >= models.reference_start then models.reference_start
        else {{ add_days(1 - max_window, 'calendar.window_end') }}
    end as segment_basis_start,
    case
        when calendar.window_end >= models.reference_start
            then least(models.reference_end, calendar.window_end)
        else calendar.window_end
    end as segment_basis_end
from windows
cross join calendar
inner join models
    on models.model_name = windows.model_name
inner join first_days
    on first_days.model_name = windows.model_name
where calendar.window_end >= first_days.first_day
    and {{ window_end_recomputed('windows.model_name', 'calendar.window_end') }}
