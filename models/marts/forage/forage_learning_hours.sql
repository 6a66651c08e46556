with

{{ marts_state_plus_tail_ctes(['tmins']) }},

final as (
    select
        country_totals.cnt as country,
        round({{ marts_mean_numeric('tmins', 'country_totals') }} / 60)::integer as hours,
        {{ marts_mean('tmins', 'country_totals') }} as tmins_mean,
        country_totals.tmins_n as n,
        {{ marts_is_weighted('tmins', 'country_totals') }} as weighted
    from country_totals
)

select * from final
