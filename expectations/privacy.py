"""The privacy suites of the marts gate: nothing personal is open by default, and no
data-subject request is dropped.

``warehouse_columns``: every column of the project's schemas whose name looks
personal (``detection.names`` of contract/privacy.yml) is classified by the
policy. A new model or source field holding an email, a phone, a card number
or free text stops publication until someone decides, in the policy, who may
see it and how long it is kept. dbt's own in-flight relations
(``__dbt_tmp``, ``__dbt_backup``) are left out.

``access_grants``: the warehouse grants each department role exactly what the
policy lets it read, column by column, and row security is forced where the
policy filters rows (``include.access.drift_query``). The grants are applied
after every dbt build; a relation rebuilt without them, a grant added by hand
or a role dropped stops publication, closed rather than open.

``privacy_content``: no value of a text column of the marts or reporting
(``detection.content_checked_in``) looks like an email, a Hong Kong phone
number, an HKID or a card number (``detection.content``): personal data that
leaked past pseudonymisation, free text carried over from a complaint, a
source field mapped into the wrong column. Only counts are recorded.

``privacy_marketing_lists``: every customer of a direct-marketing list (a
dataset with ``marketing_list: true``) consented and did not opt out
(``marts.dim_customer.is_marketing_opt_in``, PDPO Part 6A). The reporting
schema's list is published after this gate, from the same flag (ml/publish.py).

``privacy_retention``: tonight's retention purge (include/retention.py) ran,
not as a dry run, on every table of the policy with a retention period
(``ops.retention_actions``), and no row of those tables is past its retention
at the end of the business date (``ops.rows_past_retention``, the purge's own
condition): nothing the purge missed or a late load put back is published on.
The nightly DAG runs the purge before dbt.

``privacy_erasure``: nothing of a person on the suppression list
(``pii.erased_identities``, include/erasure.py) is left in raw or downstream:
no row of theirs in raw that the policy deletes, no personal column of theirs
not emptied, no table keyed by their identity or customer_key still holding it
(``ops.erased_findings``, counts only).

``privacy_requests``: a request received in the ``ANSWER_DAYS`` up to the end of
the business date that matched nobody (``marts.rpt_privacy_requests``) is a
warning naming it, so the privacy officer can ask the requester for an
identifier that works while the request can still be answered in time.
"""

from __future__ import annotations

from datetime import date

import great_expectations.expectations as gxe

from expectations.spec import CRITICAL, WARNING, TableValidation, severity
from include import access
from include.config import HK_TZ
from include.privacy import policy

WAREHOUSE_COLUMNS_SUITE = "privacy_columns"
ACCESS_SUITE = "access_grants"
CONTENT_SUITE = "privacy_content"
RETENTION_SUITE = "privacy_retention"
ERASURE_SUITE = "privacy_erasure"
MARKETING_LISTS_SUITE = "privacy_marketing_lists"
PRIVACY_REQUESTS_SUITE = "privacy_requests"

ANSWER_DAYS = 40
"""Days a data user has to comply with a data access request (PDPO s.19(1))."""


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def warehouse_columns_suite() -> list[gxe.Expectation]:
    rules = policy()
    classified = ", ".join(
        f"({_literal(relation)}, {_literal(column)})"
        for relation, column in sorted(rules.classified())
    )
    query = f"""
select cols.schema_name, cols.relation_name, cols.column_name
from (select * from {{batch}}) as cols
where cols.column_name ~* {_literal(rules.name_regex)}
  and cols.relation_name !~ '__dbt_(tmp|backup)$'
  and (cols.schema_name || '.' || cols.relation_name, cols.column_name) not in (
    select classified.relation, classified.column_name
    from (values {classified}) as classified (relation, column_name)
  )
"""
    return [
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=query,
            description="Every personal-looking column of the warehouse is classified in"
            " contract/privacy.yml (sensitivity, departments, masking, retention)",
            **severity(CRITICAL),
        )
    ]


def access_suite() -> list[gxe.Expectation]:
    return [
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=access.drift_query(columns="{batch}"),
            description="Every department role reads exactly what contract/privacy.yml lets it"
            " read, column by column, with row-level security forced where it filters rows"
            " (include/access.py applies the grants after every dbt build)",
            **severity(CRITICAL),
        )
    ]


def _night_end(business_date: date) -> str:
    """SQL for the end of the business date: midnight in Hong Kong (include.pipeline.end_of)."""
    return f"(date '{business_date.isoformat()}' + 1)::timestamp at time zone '{HK_TZ}'"


def _array(values) -> str:
    """A text[] literal for a GX query, whose braces GX's str.format would read."""
    text = "array[" + ", ".join(_literal(v) for v in values) + "]"
    return text.replace("{", "{{").replace("}", "}}")


def _findings_suite(call: str, description: str) -> list[gxe.Expectation]:
    """One critical check: the rows of the warehouse function ``call`` (a finding
    each) must be none; the batch is only the anchor GX needs."""
    query = f"""
select findings.*
from {call} as findings
cross join (select count(*) from {{batch}}) as anchor
"""
    return [
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=query, description=description, **severity(CRITICAL)
        )
    ]


def content_suite() -> list[gxe.Expectation]:
    rules = policy()
    names, patterns = zip(*sorted(rules.content_patterns.items()), strict=True)
    return _findings_suite(
        f"ops.personal_data_findings({_array(rules.content_schemas)}, {_array(names)},"
        f" {_array(patterns)})",
        "No value in the "
        + " or ".join(rules.content_schemas)
        + " schemas looks like personal data ("
        + ", ".join(names)
        + "; contract/privacy.yml detection.content)",
    )


def marketing_list_suite() -> list[gxe.Expectation]:
    query = """
select contacts.customer_key
from (select * from {batch}) as contacts
left join marts.dim_customer as customers on contacts.customer_key = customers.customer_key
where customers.customer_key is null
   or not customers.is_marketing_opt_in
   or customers.is_marketing_opted_out
"""
    return [
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=query,
            description="A direct-marketing list holds only customers who consented and did"
            " not opt out (marts.dim_customer.is_marketing_opt_in; PDPO Part 6A)",
            **severity(CRITICAL),
        )
    ]


def retention_suite(business_date: date | None) -> list[gxe.Expectation]:
    """Each retention table of the policy visited by the night's purge (a table not
    built yet is recorded as not found; any night when None), and none holding a
    row past its retention at the end of the business date (now when None)."""
    from include.retention import condition_args, tables

    night = "" if business_date is None else f" and done.business_date = date '{business_date}'"
    night_end = "current_timestamp" if business_date is None else _night_end(business_date)
    rules = _literal(condition_args()).replace("{", "{{").replace("}", "}}")
    expected = ", ".join(f"({_literal(name)})" for name in tables())
    query = f"""
select expected.dataset
from (values {expected}) as expected (dataset)
where not exists (
    select 1 from (select * from {{batch}}) as done
    where done.dataset = expected.dataset and not done.dry_run{night}
  )
"""
    return [
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=query,
            description="Tonight's retention purge ran on every table with a retention period"
            " in contract/privacy.yml (ops.retention_actions; crm privacy purge)",
            **severity(CRITICAL),
        ),
        *_findings_suite(
            f"ops.rows_past_retention({rules}::jsonb, {night_end})",
            "No row of a table with a retention period in contract/privacy.yml holds"
            " personal data past it at the end of the business date (ops.rows_past_retention;"
            " crm privacy purge --dry-run lists them)",
        ),
    ]


def erasure_suite() -> list[gxe.Expectation]:
    from include.erasure import condition_args

    raw_rules, schemas, identity_columns, key_columns, facts = condition_args()
    raw_rules = _literal(raw_rules).replace("{", "{{").replace("}", "}}")
    return _findings_suite(
        f"ops.erased_findings({raw_rules}::jsonb, {_array(schemas)},"
        f" {_array(identity_columns)}, {_array(key_columns)}, {_array(facts)})",
        "Nothing of a person whose erasure was carried out is left in raw or"
        " downstream (pii.erased_identities; contract/privacy.yml erasure)",
    )


def privacy_requests_suite(business_date: date | None) -> list[gxe.Expectation]:
    """Requests of the last ``ANSWER_DAYS`` up to the night (all when None) that matched nobody."""
    window = ""
    if business_date is not None:
        end = _night_end(business_date)
        window = (
            f" and requests.received_at < {end}"
            f" and requests.received_at >= {end} - interval '{ANSWER_DAYS} days'"
        )
    query = (
        "select requests.request_id, requests.request_type, requests.received_at,"
        " requests.identifiers_given, requests.match_status"
        " from (select * from {batch}) as requests"
        f" where requests.match_status not in ('matched', 'erased'){window}"
    )
    return [
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=query,
            description=f"Every privacy request of the last {ANSWER_DAYS} days matched a customer"
            " (an unmatched one is listed in marts.rpt_privacy_requests with the reason:"
            " ask the requester for an identifier that works)",
            **severity(WARNING),
        )
    ]


def validations(business_date: date | None = None) -> list[TableValidation]:
    return [
        TableValidation(
            "ops", "warehouse_columns", WAREHOUSE_COLUMNS_SUITE, warehouse_columns_suite()
        ),
        TableValidation("ops", "warehouse_columns", ACCESS_SUITE, access_suite()),
        TableValidation("ops", "warehouse_columns", CONTENT_SUITE, content_suite()),
        TableValidation(
            "ops", "retention_actions", RETENTION_SUITE, retention_suite(business_date)
        ),
        TableValidation("pii", "erased_identities", ERASURE_SUITE, erasure_suite()),
        *(
            TableValidation(*name.split("."), MARKETING_LISTS_SUITE, marketing_list_suite())
            for name, dataset in sorted(policy().datasets.items())
            if dataset.marketing_list and name.startswith("marts.")
        ),
        TableValidation(
            "marts",
            "rpt_privacy_requests",
            PRIVACY_REQUESTS_SUITE,
            privacy_requests_suite(business_date),
        ),
    ]


PRIVACY_SUITES = (
    WAREHOUSE_COLUMNS_SUITE,
    ACCESS_SUITE,
    CONTENT_SUITE,
    MARKETING_LISTS_SUITE,
    RETENTION_SUITE,
    ERASURE_SUITE,
    PRIVACY_REQUESTS_SUITE,
)


def verdict(conn, business_date: date) -> list[tuple[str, str, int, int]]:
    """(suite, severity, checks passed, checks failed) of the privacy suites, each check
    as the latest marts gate of ``business_date`` left it (ops.quality_results)."""
    return conn.execute(
        """
        with latest as (
            select distinct on (results.table_name, results.suite, results.expectation)
                results.suite, results.severity, results.success
            from ops.quality_results as results
            where results.gate = 'marts' and results.business_date = %s
              and results.suite = any(%s)
            order by results.table_name, results.suite, results.expectation,
                results.checked_at desc
        )
        select latest.suite, min(latest.severity),
            count(*) filter (where latest.success), count(*) filter (where not latest.success)
        from latest
        group by latest.suite
        order by array_position(%s, latest.suite)
        """,
        (business_date, list(PRIVACY_SUITES), list(PRIVACY_SUITES)),
    ).fetchall()
