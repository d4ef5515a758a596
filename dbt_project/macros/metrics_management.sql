{#-
    Management metric definitions: the ONE place they are written.
    Every model in marts/management and the real-time rpt_online_sales_today
    view compute their metrics with these macros, so the nightly reports and
    the "today so far" view cannot drift apart. The definitions in words are
    in DECISIONLOG.md, section "Management metrics".

    The macros read a line-level relation with the sales-line columns of
    fct_sales: channel, order_ref, customer_key (null for walk-ins),
    net_amount, is_return, is_void.
-#}

{#- An order or a receipt, unique across channels. -#}
{% macro metric_order_key(alias) -%}
    ({{ alias }}.channel || ':' || {{ alias }}.order_ref)
{%- endmacro %}

{#-
    A positive sale: a line that is neither a RETURN nor a VOID and brings
    money in. Only orders and receipts with such a line count as orders, and
    only their buyers as customers. Free lines (net 0), voided lines and
    return receipts do not make an order.
-#}
{% macro metric_is_sale_line(alias) -%}
    (not {{ alias }}.is_return and not {{ alias }}.is_void and {{ alias }}.net_amount > 0)
{%- endmacro %}

{#- Revenue: net amount of every line, returns negative, VOIDs zero. -#}
{% macro metric_revenue(alias) -%}
    coalesce(sum({{ alias }}.net_amount), 0)
{%- endmacro %}

{#- Orders: orders and receipts with at least one positive sale. -#}
{% macro metric_orders(alias) -%}
    count(distinct {{ metric_order_key(alias) }}) filter (where {{ metric_is_sale_line(alias) }})
{%- endmacro %}

{#- Average order value: revenue per order in HKD, 2 decimals; null without orders. -#}
{% macro metric_average_order_value(revenue, orders) -%}
    round({{ revenue }} / nullif({{ orders }}, 0), 2)
{%- endmacro %}

{#- Repeat rate: share of customers with two orders or more in the same period and slice, 4 decimals; null without customers. -#}
{% macro metric_repeat_rate(repeat_customers, customers) -%}
    round({{ repeat_customers }}::numeric / nullif({{ customers }}, 0), 4)
{%- endmacro %}

{#-
    The standard metric columns of a line-level relation, grouped by
    `dimensions` (a list of its column names). Renders one select statement,
    to be used as the body of a CTE:

        metrics as (
            {{ metrics_by('sales_by_period', ['period_type', 'period_start']) }}
        ),

    Output: the dimensions, then revenue, orders, walk_in_orders, customers,
    repeat_customers, average_order_value, repeat_rate. A group appears only
    when it has at least one line. customers and repeat_customers count
    orders inside the group: a customer with one online and one store order
    is a repeat customer of a group spanning both channels, not of either
    channel alone.
-#}
{% macro metrics_by(relation, dimensions) -%}
    {%- if dimensions | length == 0 -%}
        {{ exceptions.raise_compiler_error("metrics_by needs at least one dimension") }}
    {%- endif -%}
    select
        {%- for dim in dimensions %}
        order_totals.{{ dim }},
        {%- endfor %}
        order_totals.revenue,
        order_totals.orders,
        order_totals.walk_in_orders,
        coalesce(customer_totals.customers, 0) as customers,
        coalesce(customer_totals.repeat_customers, 0) as repeat_customers,
        {{ metric_average_order_value('order_totals.revenue', 'order_totals.orders') }}
            as average_order_value,
        {{ metric_repeat_rate(
            'coalesce(customer_totals.repeat_customers, 0)',
            'coalesce(customer_totals.customers, 0)'
        ) }} as repeat_rate

    from (

        -- orders first (grouping, not count(distinct): hashed, not sorted)
        select
            {%- for dim in dimensions %}
            order_lines.{{ dim }},
            {%- endfor %}
            {{ metric_revenue('order_lines') }} as revenue,
            count(*) filter (where order_lines.is_order) as orders,
            count(*) filter (where order_lines.is_walk_in_order) as walk_in_orders

        from (

            select
                {%- for dim in dimensions %}
                metric_lines.{{ dim }},
                {%- endfor %}
                sum(metric_lines.net_amount) as net_amount,
                bool_or({{ metric_is_sale_line('metric_lines') }}) as is_order,
                bool_or(
                    {{ metric_is_sale_line('metric_lines') }} and metric_lines.customer_key is null
                ) as is_walk_in_order

            from {{ relation }} as metric_lines
            group by
                {% for dim in dimensions %}metric_lines.{{ dim }}, {% endfor %}{{ metric_order_key('metric_lines') }}

        ) as order_lines
        group by {% for dim in dimensions %}order_lines.{{ dim }}{{ ", " if not loop.last }}{% endfor %}

    ) as order_totals

    left join (

        select
            {%- for dim in dimensions %}
            customer_orders.{{ dim }},
            {%- endfor %}
            count(*) as customers,
            count(*) filter (where customer_orders.order_count >= 2) as repeat_customers

        from (

            -- orders per identified customer inside the group
            select
                {%- for dim in dimensions %}
                customer_order_lines.{{ dim }},
                {%- endfor %}
                customer_order_lines.customer_key,
                count(*) filter (where customer_order_lines.is_order) as order_count

            from (

                select
                    {%- for dim in dimensions %}
                    metric_lines.{{ dim }},
                    {%- endfor %}
                    metric_lines.customer_key,
                    bool_or({{ metric_is_sale_line('metric_lines') }}) as is_order

                from {{ relation }} as metric_lines
                where metric_lines.customer_key is not null
                group by
                    {% for dim in dimensions %}metric_lines.{{ dim }}, {% endfor %}metric_lines.customer_key,
                    {{ metric_order_key('metric_lines') }}

            ) as customer_order_lines
            group by
                {% for dim in dimensions %}customer_order_lines.{{ dim }}, {% endfor %}customer_order_lines.customer_key

        ) as customer_orders
        where customer_orders.order_count > 0
        group by {% for dim in dimensions %}customer_orders.{{ dim }}{{ ", " if not loop.last }}{% endfor %}

    ) as customer_totals
        on
        {%- for dim in dimensions %}
        {{ "and " if not loop.first }}order_totals.{{ dim }} is not distinct from customer_totals.{{ dim }}
        {%- endfor %}
{%- endmacro %}

{#-
    The metric columns of one slice of a long metrics relation (the output
    of metrics_by), optionally prefixed, e.g. for a wide table that puts
    channels side by side. Counts and revenue are 0 where the slice had no
    line; the two ratios stay null there.
-#}
{% macro metrics_pivot_columns(alias, prefix=none) -%}
    {%- set p = prefix ~ '_' if prefix else '' -%}
    coalesce({{ alias }}.revenue, 0) as {{ p }}revenue,
    coalesce({{ alias }}.orders, 0) as {{ p }}orders,
    coalesce({{ alias }}.walk_in_orders, 0) as {{ p }}walk_in_orders,
    coalesce({{ alias }}.customers, 0) as {{ p }}customers,
    coalesce({{ alias }}.repeat_customers, 0) as {{ p }}repeat_customers,
    {{ alias }}.average_order_value as {{ p }}average_order_value,
    {{ alias }}.repeat_rate as {{ p }}repeat_rate
{%- endmacro %}

{#-
    The reporting periods, as a from-clause item with one column
    period_type: day, week (ISO, Monday start) and month, each a valid
    date_trunc() unit. Periods are of Hong Kong business dates.
-#}
{% macro metrics_period_types() -%}
    (values ('day'), ('week'), ('month')) as period_types (period_type)
{%- endmacro %}

{#- The last business date of the period that starts on `period_start`. -#}
{% macro metrics_period_end(period_type, period_start) -%}
    ({{ period_start }} + ('1 ' || {{ period_type }})::interval - interval '1 day')::date
{%- endmacro %}

{#-
    The as-of date of a nightly reporting table: the run's business date,
    or, when var('business_date') is unset, the latest business_date in
    `relation`.
-#}
{% macro metrics_as_of_date(relation) -%}
    {%- set value = business_date() -%}
    {%- if value is none -%}
        (select max(as_of_source.business_date) from {{ relation }} as as_of_source)
    {%- else -%}
        '{{ value }}'::date
    {%- endif -%}
{%- endmacro %}
