-- One row per person (every customer_key of dim_customer), as of the
-- business date: profile and consent, purchases and net revenue by channel,
-- category breadth, RFM segment and value decile, complaints, web sessions
-- and churn status. A purchase (order) is an online order or till receipt
-- with at least one sold line; revenue is net of returns. Definitions:
-- DECISIONLOG.md, "Customers and marketing".
with

dim_customer as (

    select * from {{ ref('dim_customer') }}

),

purchase_summary as (

    select * from {{ ref('int_customers__purchase_summary') }}

),

category_purchases as (

    select * from {{ ref('int_customers__category_purchases') }}

),

customer_rfm as (

    select * from {{ ref('fct_customer_rfm') }}

),

customer_value as (

    select * from {{ ref('fct_customer_value') }}

),

churn_risk as (

    select * from {{ ref('fct_customer_churn_risk') }}

),

complaints as (

    select * from {{ ref('fct_complaints') }}

),

web_sessions as (

    select * from {{ ref('fct_web_sessions') }}

),

period_ends as (

    select * from {{ ref('int_customers__period_ends') }}

),

as_of as (

    select period_ends.as_of_date
    from period_ends
    where period_ends.is_as_of_date

),

category_breadth as (

    select
        category_purchases.customer_key,
        count(distinct category_purchases.category) as category_count,
        count(distinct category_purchases.category) filter (
            where category_purchases.channel = 'online'
        ) as online_category_count,
        count(distinct category_purchases.category) filter (
            where category_purchases.channel = 'store'
        ) as store_category_count

    from category_purchases
    group by 1

),

customer_complaints as (

    select
        complaints.customer_key,
        count(*) as complaint_count,
        count(*) filter (where complaints.is_open) as open_complaint_count,
        max(complaints.business_date) as last_complaint_date

    from complaints
    where complaints.customer_key is not null
    group by 1

),

customer_sessions as (

    select
        web_sessions.customer_key,
        count(*) as web_session_count,
        max(web_sessions.business_date) as last_web_session_date

    from web_sessions
    where web_sessions.customer_key is not null
    group by 1

),

final as (

    select
        dim_customer.customer_key,

        -- profile and consent
        dim_customer.has_shop_account,
        dim_customer.has_loyalty_card,
        dim_customer.loyalty_tier,
        dim_customer.home_district,
        dim_customer.has_marketing_consent,
        dim_customer.is_marketing_opted_out,
        dim_customer.is_marketing_opt_in,

        -- purchases
        purchase_summary.first_purchase_date,
        purchase_summary.last_purchase_date,
        coalesce(purchase_summary.purchase_count, 0) as order_count,
        coalesce(purchase_summary.online_purchase_count, 0) as online_order_count,
        coalesce(purchase_summary.store_purchase_count, 0) as store_order_count,
        coalesce(purchase_summary.net_revenue, 0) as net_revenue,
        coalesce(purchase_summary.online_net_revenue, 0) as online_net_revenue,
        coalesce(purchase_summary.store_net_revenue, 0) as store_net_revenue,
        coalesce(category_breadth.category_count, 0) as category_count,
        coalesce(category_breadth.online_category_count, 0) as online_category_count,
        coalesce(category_breadth.store_category_count, 0) as store_category_count,

        -- segments
        customer_rfm.r_score,
        customer_rfm.f_score,
        customer_rfm.m_score,
        case
            when customer_rfm.segment_name is not null then customer_rfm.segment_name
            when purchase_summary.purchase_count > 0 then 'Inactive'
        end as rfm_segment,
        customer_value.value_decile,
        coalesce(customer_value.is_high_end, false) as is_high_end,

        -- service and web
        coalesce(customer_complaints.complaint_count, 0) as complaint_count,
        coalesce(customer_complaints.open_complaint_count, 0) as open_complaint_count,
        customer_complaints.last_complaint_date,
        coalesce(customer_sessions.web_session_count, 0) as web_session_count,
        customer_sessions.last_web_session_date,

        -- churn
        churn_risk.churn_status,
        churn_risk.churn_reason,
        coalesce(churn_risk.churn_status = 'at_risk', false) as is_at_risk,
        coalesce(churn_risk.churn_status = 'lost', false) as is_lost,

        as_of.as_of_date

    from dim_customer
    cross join as_of
    left join purchase_summary
        on dim_customer.customer_key = purchase_summary.customer_key
    left join category_breadth
        on dim_customer.customer_key = category_breadth.customer_key
    left join customer_rfm
        on dim_customer.customer_key = customer_rfm.customer_key
    left join customer_value
        on dim_customer.customer_key = customer_value.customer_key
    left join churn_risk
        on dim_customer.customer_key = churn_risk.customer_key
    left join customer_complaints
        on dim_customer.customer_key = customer_complaints.customer_key
    left join customer_sessions
        on dim_customer.customer_key = customer_sessions.customer_key

)

select * from final
