-- Descriptions of the suppression list (015), for the SQL clients of the pii
-- schema's readers, as dbt writes them for its models.
comment on table pii.erased_identities is
'The suppression list: every source record of a person whose erasure request was carried out (include/erasure.py), so a re-sent file, a new extract or a rebuild from raw does not bring them back. No contact details.';
comment on column pii.erased_identities.identity_id is 'The erased source record, ''<type>:<source id>''.';
comment on column pii.erased_identities.identity_type is 'shop, loyalty, web or complaint.';
comment on column pii.erased_identities.source_id is 'The id in its source system (shop customer_id, loyalty card_no, web anonymous_id, complaint ticket_id).';
comment on column pii.erased_identities.person_anchor is 'The person the identity graph gave the record when the erasure was carried out.';
comment on column pii.erased_identities.customer_key is 'That person''s pseudonymous customer_key.';
comment on column pii.erased_identities.request_id is 'The erasure request (raw.privacy_requests).';
comment on column pii.erased_identities.business_date is 'Business date of the night that carried it out.';
comment on column pii.erased_identities.erased_at is 'When it was carried out.';
