{#- Every row satisfies the expression (rows where it is NULL pass: NULL means "not computed"). -#}
{% test expression_is_true(model, expression, column_name=none) %}
select * from {{ model }} where not ({{ expression }})
{% endtest %}
