{#- One row per country: submissions, the country means and how many values are official. -#}
{{ config(tags=['serving']) }}
{%- set indices = marts_state_indices() %}

with

{{ marts_state_plus_tail_ctes(indices) }},

final as (
    select
        country_totals.cnt as country,
        country_totals.submissions,
        {%- for x in indices %}
            {{ marts_mean(x, 'country_totals') }} as {{ x }}_mean,
            country_totals.{{ x }}_n,
            {{ marts_is_weighted(x, 'country_totals') }} as {{ x }}_weighted,
            country_totals.{{ x }}_n_official::double precision / nullif(country_totals.{{ x }}_n, 0)
                as {{ x }}_official_share,
        {%- endfor %}
        (
            {%- for x in indices %}
                country_totals.{{ x }}_n_official{{ ' +' if not loop.last }}
            {%- endfor %}
        )::double precision / nullif(
            {%- for x in indices %}
                country_totals.{{ x }}_n{{ ' +' if not loop.last }}
            {%- endfor %}, 0
        ) as official_share
    from country_totals
)

select * from final
