-- HOMEPOS blocks written by `pulse calibrate homepos`: only each country's newest version.

with

source as (

    select * from {{ source('calibration', 'homepos_params') }}

),

newest as (

    select
        cnt,
        max(version) as newest_version  -- noqa: RF04

    from source
    group by cnt

),

final as (

    select
        s.version as calibration_version,  -- noqa: RF04
        s.method,
        s.a,
        s.b1,
        s.b2,
        s.b3,
        s.b4,
        s.b5,
        s.n_rows,
        s.fitted_at,
        upper(s.cnt) as cnt,
        upper(s.item) as item

    from source as s
    inner join newest as n on s.cnt = n.cnt and s.version = n.newest_version  -- noqa: RF04

)

select * from final
