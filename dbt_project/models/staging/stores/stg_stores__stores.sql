with

source as (

    select * from {{ source('stores', 'stores') }}
    where {{ known_by_business_date() }}

),

latest_load as (

    -- the file is replaced whole when it changes: only the rows of the
    -- latest load are the current store master
    select max(source._load_id) as load_id
    from source

),

current_master as (

    select source.*
    from source
    inner join latest_load
        on source._load_id = latest_load.load_id

),

renamed as (

    select
        -- ids
        trim(store_code) as store_code,

        -- attributes
        store_name,
        nullif(trim(district), '') as district,
        nullif(trim(region), '') as region,
        closed_on is not null as is_closed,

        -- dates
        opened_on,
        closed_on,

        -- lineage
        _load_id as load_id

    from current_master

)

select * from renamed
