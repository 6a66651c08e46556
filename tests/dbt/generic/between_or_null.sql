{#- Every non-null value lies in [min_value, max_value]: the failing rows are those outside
    (nulls pass). -#}
{% test between_or_null(model, column_name, min_value, max_value) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} < {{ min_value }} or {{ column_name }} > {{ max_value }}

{% endtest %}
