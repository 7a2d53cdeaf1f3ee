{#- Ephemeral on every engine (dbt_project.yml makes the other intermediate models
    tables on Spark): each consumer reads its own task's rows and a few columns of it. -#}
{{ config(materialized='ephemeral') }}

{#- Each prediction with its label once per segment group it is measured in
    (macros/segment_rows.sql). Buckets (top values and '__other__') are assigned per
    window in marts/performance.sql. -#}

with labeled as (
    select * from {{ ref('int_predictions_labeled') }}
)

{{ segment_rows('labeled') }}
