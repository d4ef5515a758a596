"""The privacy suite of the marts gate: nothing personal is open by default.

``warehouse_columns``: every column of the project's schemas whose name looks
personal (``detection.names`` of contract/privacy.yml) is classified by the
policy. A new model or source field holding an email, a phone, a card number
or free text stops publication until someone decides, in the policy, who may
see it and how long it is kept. dbt's own in-flight relations
(``__dbt_tmp``, ``__dbt_backup``) are left out.
"""

from __future__ import annotations

import great_expectations.expectations as gxe

from expectations.spec import CRITICAL, TableValidation, severity
from include.privacy import policy

WAREHOUSE_COLUMNS_SUITE = "privacy_columns"


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


def validations() -> list[TableValidation]:
    return [
        TableValidation(
            "ops", "warehouse_columns", WAREHOUSE_COLUMNS_SUITE, warehouse_columns_suite()
        )
    ]
