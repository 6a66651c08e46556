with

{{ marts_state_plus_tail_ctes(['durecec', 'belong']) }},

final as (
    select
        country_totals.cnt as country,
        {{ marts_mean('durecec', 'country_totals') }} as durecec_mean,
        {{ marts_mean('belong', 'country_totals') }} as belong_mean,
        country_totals.submissions,
        -- true when every mean present is weighted; null when neither mean exists
        case
            when country_totals.durecec_n > 0 or country_totals.belong_n > 0
                then
                    (country_totals.durecec_n = 0 or country_totals.durecec_sum_w > 0)
                    and (country_totals.belong_n = 0 or country_totals.belong_sum_w > 0)
        end as weighted
    from country_totals
)

select * from final
