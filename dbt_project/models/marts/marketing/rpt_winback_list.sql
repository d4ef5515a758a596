-- Win-back contact list: the lost and at-risk customers of
-- fct_customer_churn_risk who may be sent marketing today
-- (dim_customer.is_marketing_opt_in), with the reason, the suggested action
-- and what a campaign needs to prioritise them (segment, value decile).
-- A contact list: customers without consent, or who opted out, are never in
-- it (tests/marketing/assert_contact_lists_only_opted_in.sql checks this).
with

churn_risk as (

    select * from {{ ref('fct_customer_churn_risk') }}

),

dim_customer as (

    select * from {{ ref('dim_customer') }}

),

customer_rfm as (

    select * from {{ ref('fct_customer_rfm') }}

),

customer_value as (

    select * from {{ ref('fct_customer_value') }}

),

final as (

    select
        churn_risk.customer_key,

        churn_risk.churn_status,
        churn_risk.churn_reason,
        churn_risk.suggested_action,

        customer_rfm.segment_name,
        customer_value.value_decile,
        coalesce(customer_value.is_high_end, false) as is_high_end,
        dim_customer.loyalty_tier,
        dim_customer.home_district,

        churn_risk.last_purchase_date,
        churn_risk.days_since_last_purchase,
        churn_risk.purchase_count,
        churn_risk.net_revenue,
        churn_risk.complaint_count,
        churn_risk.last_complaint_date,

        -- best customers first within each status
        row_number() over (
            partition by churn_risk.churn_status
            order by churn_risk.net_revenue desc, churn_risk.customer_key asc
        ) as priority_rank,

        dim_customer.is_marketing_opt_in,
        churn_risk.as_of_date

    from churn_risk
    inner join dim_customer
        on churn_risk.customer_key = dim_customer.customer_key
    left join customer_rfm
        on churn_risk.customer_key = customer_rfm.customer_key
    left join customer_value
        on churn_risk.customer_key = customer_value.customer_key
    where
        churn_risk.churn_status in ('at_risk', 'lost')
        and dim_customer.is_marketing_opt_in

)

select * from final
