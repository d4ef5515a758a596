-- An expected file that never came (ops.load_gaps) fails the raw gate once it is
-- CRM_GAP_FAIL_DAYS late, until it arrives or an operator resolves the gap:
-- `crm ledger resolve-gap <source> <date> <expected> --note '...'` sets this.
alter table ops.load_gaps
    add column if not exists resolution text;
comment on column ops.load_gaps.resolution is
    'How an operator dealt with a file that never came (crm ledger resolve-gap); null when the file arrived.';
