with

source as (

    -- an event log, not versioned rows: raw's primary key
    -- (order_id, status, changed_at) already makes every row unique
    select * from {{ source('shop', 'order_status_history') }}
    where {{ known_by_business_date() }}

),

renamed as (

    select
        -- ids
        order_id,

        -- attributes
        lower(trim(status)) as order_status,

        -- timestamps
        changed_at,

        -- lineage
        _load_id as load_id

    from source

)

select * from renamed
