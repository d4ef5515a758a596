{#-
    Why each person is who they are: one row per identifier value that joins
    two or more of a person's records, with the records it joins and the
    match rules it joined them under. A person's rows, read together, are the
    path between any two of its records (e.g. the shop account and the loyalty
    card share an email, the card and a complaint share the card number).
    A person with a single record has no row. Why two records were NOT
    joined is in int_identity__edges (edge_status). Personal data: schema pii.
-#}
with

person_map as (

    select * from {{ ref('int_identity__person_map') }}

),

edges as (

    select * from {{ ref('int_identity__edges') }}

),

linking_edges as (

    select
        person_map.person_anchor,
        edges.identifier_type,
        edges.identifier_value,
        edges.rule_name,
        edges.identity_id

    from edges
    inner join person_map
        on edges.identity_id = person_map.identity_id
    where edges.is_linking

),

final as (

    select
        linking_edges.person_anchor,
        linking_edges.identifier_type,
        linking_edges.identifier_value,
        string_agg(distinct linking_edges.rule_name, ',' order by linking_edges.rule_name)
            as match_rules,
        array_agg(linking_edges.identity_id order by linking_edges.identity_id)
            as identity_ids,
        count(*) as linked_record_count

    from linking_edges
    group by 1, 2, 3

)

select * from final
