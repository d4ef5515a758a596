{#-
    Fails with the rows for which `expression` is not true (null counts as a
    failure). Use at model level for row rules spanning several columns, e.g.
    `net_amount = gross_amount - discount_amount`. At column level the
    column name is available but not used: write it in the expression.
-#}
{% test expression_is_true(model, expression, column_name=none) %}

select *
from {{ model }}
where not coalesce(({{ expression }}), false)

{% endtest %}
