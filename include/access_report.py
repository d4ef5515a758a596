"""The data package of a data access request (PDPO DPP6, s.18): every row the
warehouse holds about the person a request matched, by table.

Where a person's data lives is the policy's (contract/privacy.yml ``erasure``): the
raw tables by the column holding each kind of source record, and every table of
the erasure's schemas by its identity and customer_key columns. The package is a
JSON file in ``CRM_HOME/privacy/access`` (owner only: it is personal data), for
the privacy officer to review and send; ``crm privacy access-report REQUEST_ID``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql

from include.config import CrmError
from include.privacy import Policy, policy

PERSON = """
select distinct person_map.identity_id, person_map.customer_key
from intermediate.int_privacy__request_matches as matches
inner join intermediate.int_identity__person_map as person_map
    on matches.person_anchor = person_map.person_anchor
where matches.request_id = %s
order by 1
"""


@dataclass(frozen=True)
class Package:
    request_id: str
    path: Path
    customer_keys: tuple[str, ...]
    rows: dict[str, int]  # table -> rows in the package


def _rows(conn, statement: sql.Composable, params) -> list[dict]:
    cursor = conn.execute(statement, params)
    names = [c.name for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def collect(conn: psycopg.Connection, request_id: str, rules: Policy | None = None) -> dict:
    """Every row about the person ``request_id`` matched, by table (empty tables left out)."""
    erasure = (rules or policy()).erasure
    built = conn.execute(
        "select to_regclass('intermediate.int_privacy__request_matches') is not null"
    ).fetchone()[0]
    request = conn.execute(
        "select request_id, request_type, received_at from raw.privacy_requests"
        " where request_id = %s order by received_at limit 1",
        (request_id,),
    ).fetchone()
    if request is None:
        raise CrmError(f"privacy request {request_id} is not in raw.privacy_requests")
    identities = conn.execute(PERSON, (request_id,)).fetchall() if built else []
    if not identities:
        raise CrmError(
            f"privacy request {request_id} matched nobody in the last build"
            " (marts.rpt_privacy_requests says why); there is no data package to make"
        )
    ids = [i for i, _ in identities]
    keys = sorted({k for _, k in identities})
    by_type: dict[str, list[str]] = {}
    for identity in ids:
        kind, _, source_id = identity.partition(":")
        by_type.setdefault(kind, []).append(source_id)

    tables: dict[str, list[dict]] = {}
    for name, (match, _) in sorted(erasure.raw.items()):
        wanted = [(column, by_type[kind]) for kind, column in match.items() if kind in by_type]
        if not wanted or conn.execute("select to_regclass(%s)", (name,)).fetchone()[0] is None:
            continue
        where = sql.SQL(" or ").join(
            sql.SQL("t.{}::text = any(%s)").format(sql.Identifier(column)) for column, _ in wanted
        )
        statement = sql.SQL("select * from {} as t where {}").format(
            sql.Identifier(*name.split(".")), where
        )
        found = _rows(conn, statement, [values for _, values in wanted])
        if found:
            tables[name] = found

    columns = conn.execute(
        "select cols.table_schema || '.' || cols.table_name, cols.column_name"
        " from information_schema.columns as cols"
        " where cols.table_schema = any(%s) and cols.column_name = any(%s)"
        " and cols.table_name !~ '__dbt_(tmp|backup)$'"
        " order by 1, 2",
        (list(erasure.schemas), [*erasure.identity_columns, *erasure.key_columns]),
    ).fetchall()
    downstream: dict[str, list[str]] = {}
    for relation, column in columns:
        downstream.setdefault(relation, []).append(column)
    for relation, cols in downstream.items():
        where = sql.SQL(" or ").join(
            sql.SQL("t.{} = any(%s)").format(sql.Identifier(c)) for c in cols
        )
        params = [keys if c in erasure.key_columns else ids for c in cols]
        statement = sql.SQL("select * from {} as t where {}").format(
            sql.Identifier(*relation.split(".")), where
        )
        found = _rows(conn, statement, params)
        if found:
            tables[relation] = found
    return {
        "request": {
            "request_id": request[0],
            "request_type": request[1],
            "received_at": request[2],
        },
        "generated_at": datetime.now().astimezone(),
        "customer_keys": keys,
        "source_records": ids,
        "tables": tables,
    }


def write(warehouse_url: str, request_id: str, folder: Path) -> Package:
    """Collect the package of ``request_id`` and write it, owner-only, into ``folder``."""
    with psycopg.connect(warehouse_url) as conn:
        package = collect(conn, request_id)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in request_id)
    path = folder / f"{safe}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(package, out, indent=2, default=str, sort_keys=True)
    return Package(
        request_id,
        path,
        tuple(package["customer_keys"]),
        {name: len(rows) for name, rows in package["tables"].items()},
    )
