{#-
    Who is one person: one row per source record (shop account, loyalty card,
    web cookie that logged in, complaint ticket) with its person_anchor and
    customer_key.

    A person is a connected component of the identity graph: records are
    nodes (int_identity__records), and records sharing a linking identifier
    value are connected (int_identity__edges, match rules in the seed
    identity_match_rules). Components are found by min-label propagation in
    a recursive CTE: every record starts with its own label, its position in
    the anchor order (shop accounts by customer_id, then loyalty cards, web
    cookies, complaint tickets, each by id), and labels flow along edges,
    a label only going to records later in the order; the smallest label
    that reaches a record is its component's first record, whose identity_id
    is the person_anchor. The anchor is thus a function of the component
    alone: it stays the same from run to run while the component does, and
    changes only when a merge brings in an earlier record or a split takes
    the anchor away (DECISIONLOG.md, "Identity graph").
-#}
with recursive

records as (

    select * from {{ ref('int_identity__records') }}

),

edges as (

    select * from {{ ref('int_identity__edges') }}

),

nodes as (

    select
        records.identity_id,
        records.identity_type,
        records.source_id,
        row_number() over (
            -- byte order, whatever the database's collation
            order by records.anchor_rank, records.anchor_sort_key collate "C"  -- noqa: RF03
        ) as node_id

    from records

),

linking_edges as (

    select
        nodes.node_id,
        edges.identifier_type,
        edges.identifier_value,
        edges.rule_name

    from edges
    inner join nodes
        on edges.identity_id = nodes.identity_id
    where edges.is_linking

),

-- every holder of a linking value is tied to the value's first holder:
-- a star per value, as connected as all pairs but with one edge per holder
identifier_hubs as (

    select
        linking_edges.identifier_type,
        linking_edges.identifier_value,
        min(linking_edges.node_id) as hub_node_id

    from linking_edges
    group by 1, 2

),

spokes as (

    select
        linking_edges.node_id,
        identifier_hubs.hub_node_id

    from linking_edges
    inner join identifier_hubs
        on
            linking_edges.identifier_type = identifier_hubs.identifier_type
            and linking_edges.identifier_value = identifier_hubs.identifier_value
    where linking_edges.node_id <> identifier_hubs.hub_node_id

),

adjacency as (

    select
        spokes.node_id as from_node_id,
        spokes.hub_node_id as to_node_id
    from spokes

    union

    select
        spokes.hub_node_id as from_node_id,
        spokes.node_id as to_node_id
    from spokes

),

-- a label only flows to later nodes: the component's smallest label still
-- reaches every node (each node on the way is later than it), and the
-- recursion stays small
label_propagation (node_id, component_label) as (

    select
        nodes.node_id,
        nodes.node_id as component_label
    from nodes

    union

    select
        adjacency.to_node_id as node_id,
        label_propagation.component_label
    from label_propagation
    inner join adjacency
        on label_propagation.node_id = adjacency.from_node_id
    where label_propagation.component_label < adjacency.to_node_id

),

components as (

    select
        label_propagation.node_id,
        min(label_propagation.component_label) as component_label

    from label_propagation
    group by 1

),

record_rules as (

    select
        linking_edges.node_id,
        string_agg(distinct linking_edges.rule_name, ',' order by linking_edges.rule_name)
            as match_rules

    from linking_edges
    group by 1

),

final as (

    select
        nodes.identity_id,
        nodes.identity_type,
        nodes.source_id,
        anchors.identity_id as person_anchor,
        {{ pseudonymise('anchors.identity_id') }} as customer_key,
        nodes.identity_id = anchors.identity_id as is_person_anchor,
        count(*) over (partition by components.component_label) as person_record_count,
        record_rules.match_rules

    from nodes
    inner join components
        on nodes.node_id = components.node_id
    inner join nodes as anchors
        on components.component_label = anchors.node_id
    left join record_rules
        on nodes.node_id = record_rules.node_id

)

select * from final
