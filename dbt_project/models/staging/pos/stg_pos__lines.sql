-- A table, not a view: its ranking spans the whole history (DECISIONLOG "Staging rules").
{{ config(materialized='table', indexes=[{'columns': ['load_id']}]) }}
with

source as (

    select * from {{ source('pos', 'lines') }}
    where {{ known_by_business_date() }}

),

ranked as (

    -- a later seq re-exports the whole store-day and supersedes earlier
    -- files: keep only the highest _file_seq per (_business_date,
    -- _file_store_code), and of that file only its latest load (in case the
    -- same file was landed twice)
    select
        source.*,
        dense_rank() over (
            partition by source._business_date, source._file_store_code
            order by source._file_seq desc, source._load_id desc
        ) as export_rank

    from source

),

current_export as (

    select * from ranked
    where export_rank = 1

),

renamed as (

    select
        -- ids
        trim(receipt_no) as receipt_no,
        line_no,
        coalesce(nullif(trim(store_code), ''), _file_store_code) as store_code,
        trim(sku) as sku,
        nullif(trim(loyalty_card_no), '') as loyalty_card_no,
        nullif(trim(staff_id), '') as staff_id,

        -- attributes
        upper(trim(txn_type)) as txn_type,
        upper(trim(txn_type)) = 'VOID' as is_void,
        upper(trim(txn_type)) = 'RETURN' as is_return,
        lower(trim(payment_method)) as payment_method,

        -- quantities and amounts (HKD): a VOID line carries no money; a
        -- RETURN has a negative quantity and reverses its discount too
        quantity,
        unit_price,
        (case
            when upper(trim(txn_type)) = 'VOID' then 0
            else quantity * unit_price
        end)::numeric(12, 2) as gross_amount,
        (case
            when upper(trim(txn_type)) = 'VOID' then 0
            when quantity < 0 then -coalesce(discount, 0)
            else coalesce(discount, 0)
        end)::numeric(12, 2) as discount_amount,

        -- timestamps
        txn_ts as txn_local_ts,
        {{ local_hk_to_utc('txn_ts') }} as sold_at,

        -- lineage
        _business_date as file_business_date,
        _file_seq as file_seq,
        _load_id as load_id,
        _file as source_file,
        _line as source_line

    from current_export

),

final as (

    select
        renamed.*,
        renamed.gross_amount - renamed.discount_amount as net_amount

    from renamed

)

select * from final
