-- Countries with a calibration written and their rows not rescored yet (src/pisa_pulse/indices/calibrate.py
-- inserts, src/pisa_pulse/indices/rescore.py deletes): their served ESCS is not final.

with

source as (

    select * from {{ source('calibration', 'rescore_pending') }}

),

final as (

    select
        cnt,
        since

    from source

)

select * from final
