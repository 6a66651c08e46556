{#- No two rows share the same values in `columns` (a composite key check): the failing rows
    are the combinations that occur more than once. No dbt_utils here: `dbt deps` cannot
    reach the hub. -#}
{% test unique_together(model, columns) %}

select
    {{ columns | join(', ') }},
    count(*) as n_rows
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1

{% endtest %}
