-- The queue of countries whose rows were rescored after a calibration (src/pisa_pulse/indices/rescore.py):
-- country_index_state recomputes them and its post-hook empties the queue.

with

source as (

    select * from {{ source('calibration', 'rescored_countries') }}

),

final as (

    select
        cnt,
        rescored_at

    from source

)

select * from final
