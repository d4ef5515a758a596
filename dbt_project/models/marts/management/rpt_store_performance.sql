-- Store performance per store and calendar month: the management metrics
-- (macros/metrics_management.sql) of the store's till lines, revenue per
-- trading day, returns, VOIDs, unknown skus and the store's revenue rank in
-- the month. Every store open during a month has a row, with zeros when it
-- sold nothing; a store seen in sales but missing from the master keeps its
-- rows, without attributes.
with

sales as (

    select * from {{ ref('fct_sales') }}

),

stores as (

    select * from {{ ref('stg_stores__stores') }}

),

as_of as (

    select
        min(sales.business_date) filter (where sales.channel = 'store') as first_sales_date,
        {{ metrics_as_of_date(ref('fct_sales')) }} as as_of_date

    from sales

),

store_lines as (

    select
        sales.*,
        date_trunc('month', sales.business_date)::date as month_start

    from sales
    where sales.channel = 'store'

),

months as (

    select
        month_series.calendar_month::date as month_start,
        (month_series.calendar_month + interval '1 month' - interval '1 day')::date as month_end

    from
        as_of,
        generate_series(
            date_trunc('month', as_of.first_sales_date),
            as_of.as_of_date,
            interval '1 month'
        ) as month_series (calendar_month)

),

store_months as (

    -- every store open at some point of the month, and every store that sold
    select
        stores.store_code,
        months.month_start

    from stores
    inner join months
        on
            stores.opened_on <= months.month_end
            and (stores.closed_on is null or stores.closed_on >= months.month_start)

    union

    select
        store_lines.store_code,
        store_lines.month_start

    from store_lines

),

metrics as (

    {{ metrics_by('store_lines', ['store_code', 'month_start']) }}

),

till_activity as (

    select
        store_lines.store_code,
        store_lines.month_start,
        -- a trading day: the till recorded at least one line that day
        count(distinct store_lines.business_date) as trading_days,
        count(*) as till_lines,
        count(*) filter (where store_lines.is_return) as return_lines,
        count(*) filter (where store_lines.is_void) as void_lines,
        count(*) filter (where store_lines.is_unknown_sku) as unknown_sku_lines,
        coalesce(
            sum(store_lines.net_amount) filter (where {{ metric_is_sale_line('store_lines') }}), 0
        ) as sales_amount,
        coalesce(-sum(store_lines.net_amount) filter (where store_lines.is_return), 0)
            as returns_amount

    from store_lines
    group by 1, 2

),

final as (

    select
        store_months.store_code,
        store_months.month_start,
        months.month_end,
        months.month_end <= as_of.as_of_date as is_complete_month,

        stores.store_name,
        stores.district,
        stores.region,
        stores.opened_on,
        stores.closed_on,
        coalesce(stores.is_closed, false) as is_closed,

        {{ metrics_pivot_columns('metrics') }},

        coalesce(till_activity.trading_days, 0) as trading_days,
        round(
            coalesce(metrics.revenue, 0) / nullif(till_activity.trading_days, 0), 2
        ) as revenue_per_trading_day,
        coalesce(till_activity.sales_amount, 0) as sales_amount,
        coalesce(till_activity.returns_amount, 0) as returns_amount,
        round(till_activity.returns_amount / nullif(till_activity.sales_amount, 0), 4)
            as returns_rate,
        coalesce(till_activity.till_lines, 0) as till_lines,
        coalesce(till_activity.return_lines, 0) as return_lines,
        coalesce(till_activity.void_lines, 0) as void_lines,
        round(till_activity.void_lines::numeric / nullif(till_activity.till_lines, 0), 4)
            as void_rate,
        coalesce(till_activity.unknown_sku_lines, 0) as unknown_sku_lines,

        rank() over (
            partition by store_months.month_start
            order by coalesce(metrics.revenue, 0) desc
        ) as revenue_rank,

        as_of.as_of_date

    from store_months
    cross join as_of
    inner join months
        on store_months.month_start = months.month_start
    left join stores
        on store_months.store_code = stores.store_code
    left join metrics
        on
            store_months.store_code = metrics.store_code
            and store_months.month_start = metrics.month_start
    left join till_activity
        on
            store_months.store_code = till_activity.store_code
            and store_months.month_start = till_activity.month_start

)

select * from final
