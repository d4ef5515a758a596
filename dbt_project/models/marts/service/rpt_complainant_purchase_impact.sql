-- Do complainants buy less afterwards than comparable customers? Average net
-- sales in the N days before and after the first complaint, for the matched
-- complainants and for their matched comparison groups (non-complainants of
-- the same prior-spend decile and channel mix over the same calendar
-- windows; each complainant weighs 1, so both groups have the same mix).
-- change_vs_comparison is the difference in differences: the complainants'
-- average change minus the comparison's. One pair of rows for all
-- complainants and one per severity of the first complaint.
-- Method and limits: DECISIONLOG.md, "Customer service".
with

purchase_matches as (

    select * from {{ ref('int_service__complainant_purchase_matches') }}

),

as_of as (

    select * from {{ ref('int_service__as_of') }}

),

segmented as (

    select
        'all' as segment_type,
        'all' as segment_value,
        purchase_matches.*
    from purchase_matches

    union all

    select
        'first_complaint_severity' as segment_type,
        purchase_matches.first_complaint_severity as segment_value,
        purchase_matches.*
    from purchase_matches

),

segments as (

    select
        segmented.segment_type,
        segmented.segment_value,
        max(segmented.window_days) as window_days,
        count(*) filter (where segmented.is_matched) as matched_complainants,
        count(*) filter (where not segmented.is_matched) as unmatched_complainants,

        avg(segmented.net_sales_before) filter (where segmented.is_matched) as complainant_before,
        avg(segmented.net_sales_after) filter (where segmented.is_matched) as complainant_after,
        avg(segmented.bought_after::int) filter (
            where segmented.is_matched
        ) as complainant_share_buying_after,

        avg(segmented.comparison_avg_net_sales_before) as comparison_before,
        avg(segmented.comparison_avg_net_sales_after) as comparison_after,
        avg(segmented.comparison_share_buying_after) as comparison_share_buying_after,
        avg(segmented.comparison_customers) filter (
            where segmented.is_matched
        ) as avg_comparison_cell_size

    from segmented
    group by 1, 2

),

groups as (

    select
        segments.segment_type,
        segments.segment_value,
        'complainants' as customer_group,
        segments.window_days,
        segments.matched_complainants,
        segments.unmatched_complainants,
        segments.avg_comparison_cell_size,
        segments.complainant_before as avg_net_sales_before,
        segments.complainant_after as avg_net_sales_after,
        segments.complainant_share_buying_after as share_buying_after,
        (segments.complainant_after - segments.complainant_before)
        - (segments.comparison_after - segments.comparison_before) as change_vs_comparison

    from segments

    union all

    select
        segments.segment_type,
        segments.segment_value,
        'matched_comparison' as customer_group,
        segments.window_days,
        segments.matched_complainants,
        segments.unmatched_complainants,
        segments.avg_comparison_cell_size,
        segments.comparison_before as avg_net_sales_before,
        segments.comparison_after as avg_net_sales_after,
        segments.comparison_share_buying_after as share_buying_after,
        (segments.complainant_after - segments.complainant_before)
        - (segments.comparison_after - segments.comparison_before) as change_vs_comparison

    from segments

),

final as (

    select
        md5(
            groups.segment_type || '|' || groups.segment_value || '|' || groups.customer_group
        ) as purchase_impact_key,
        groups.segment_type,
        groups.segment_value,
        groups.customer_group,
        groups.window_days,
        groups.matched_complainants,
        groups.unmatched_complainants,
        round(groups.avg_comparison_cell_size, 1) as avg_comparison_cell_size,
        round(groups.avg_net_sales_before, 2) as avg_net_sales_before,
        round(groups.avg_net_sales_after, 2) as avg_net_sales_after,
        round(groups.avg_net_sales_after - groups.avg_net_sales_before, 2) as avg_net_sales_change,
        round(groups.share_buying_after, 4) as share_buying_after,
        round(groups.change_vs_comparison, 2) as change_vs_comparison,
        as_of.as_of_date

    from groups
    cross join as_of

)

select * from final
