-- Contact lists hold only people who may be sent marketing today: every
-- customer_key of rpt_winback_list, rpt_cross_sell_targets and rpt_prospects
-- must be opted in (dim_customer.is_marketing_opt_in: consent given and no
-- opt-out request). Returns the offending rows.
with

dim_customer as (

    select * from {{ ref('dim_customer') }}

),

contact_lists as (

    select
        'rpt_winback_list' as contact_list,
        winback_list.customer_key
    from {{ ref('rpt_winback_list') }} as winback_list

    union all

    select
        'rpt_cross_sell_targets' as contact_list,
        cross_sell_targets.customer_key
    from {{ ref('rpt_cross_sell_targets') }} as cross_sell_targets

    union all

    select
        'rpt_prospects' as contact_list,
        prospects.customer_key
    from {{ ref('rpt_prospects') }} as prospects

)

select
    contact_lists.contact_list,
    contact_lists.customer_key

from contact_lists
left join dim_customer
    on contact_lists.customer_key = dim_customer.customer_key
where not coalesce(dim_customer.is_marketing_opt_in, false)
