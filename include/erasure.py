"""Erasure requests carried out: a person's personal data removed everywhere, the
de-identified facts kept (contract/privacy.yml ``erasure``).

The night's ``erasure`` task, before the build:

1. adds to the suppression list ``pii.erased_identities`` every source record of
   each person an erasure request matched by the end of the business date (the
   last build's ``intermediate.int_privacy__request_matches``: a request that
   arrives tonight is matched by tonight's build and carried out the next night,
   as an opt-out reaches the marketing lists by the next night);
2. for every identity on the list, deletes or empties the rows that still hold
   something of it (``ops.erasure_conditions``, the one place the conditions are
   written; the marts gate's ``privacy_erasure`` check counts the same rows), in
   raw and in every table downstream, so tonight's build, a re-sent file and a
   rebuild from raw all leave the person out.

Idempotent (an emptied or deleted row no longer matches; the list is keyed by
identity), one transaction per table, every action in ``ops.erasure_actions``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, datetime

import psycopg
from psycopg import sql

from include.privacy import Policy, policy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Action:
    dataset: str
    action: str  # delete | empty
    columns: tuple[str, ...]
    rows: int

    def sentence(self) -> str:
        what = "deleted" if self.action == "delete" else f"emptied {', '.join(self.columns)} of"
        return f"{self.dataset}: {what} {self.rows:,} row(s) of erased people"


QUARANTINE = "quarantine.rejected_rows"


def condition_args(rules: Policy | None = None) -> tuple:
    """The arguments of ``ops.erasure_conditions`` and ``ops.erased_findings``.

    The quarantine is matched like the raw tables its sources load: a rejected line
    of a source whose raw table the policy matches by, say, loyalty card holds an
    erased card number as a word, so its raw content is emptied."""
    from include.contract import sources

    erasure = (rules or policy()).erasure
    raw = {
        name: {"match": match, "empty": list(empty)}
        for name, (match, empty) in sorted(erasure.raw.items())
    }
    content = {
        source: sorted(erasure.raw[f"raw.{spec.table}"][0])
        for source, spec in sorted(sources().items())
        if f"raw.{spec.table}" in erasure.raw
    }
    if content:
        raw[QUARANTINE] = {"content": content, "empty": ["raw_content"]}
    return (
        json.dumps(raw, sort_keys=True),
        list(erasure.schemas),
        list(erasure.identity_columns),
        list(erasure.key_columns),
        list(erasure.facts),
    )


NEW_ERASURES = """
insert into pii.erased_identities (identity_id, identity_type, source_id, person_anchor,
    customer_key, request_id, business_date)
select distinct on (person_map.identity_id)
    person_map.identity_id,
    split_part(person_map.identity_id, ':', 1),
    substr(person_map.identity_id, strpos(person_map.identity_id, ':') + 1),
    person_map.person_anchor,
    person_map.customer_key,
    requests.request_id,
    %(as_of)s
from intermediate.int_privacy__request_matches as matches
inner join raw.privacy_requests as requests on matches.request_id = requests.request_id
inner join intermediate.int_identity__person_map as person_map
    on matches.person_anchor = person_map.person_anchor
where requests.request_type = 'erasure'
  and requests.received_at < %(night_end)s
order by person_map.identity_id, requests.received_at, requests.request_id
on conflict (identity_id) do nothing
"""


def record_new(conn: psycopg.Connection, as_of: date) -> int:
    """Put the people of the erasure requests matched so far on the suppression list;
    the identities added. Nothing before the first build has matched anything."""
    from include.pipeline import end_of

    built = conn.execute(
        "select to_regclass('intermediate.int_privacy__request_matches') is not null"
        " and to_regclass('intermediate.int_identity__person_map') is not null"
    ).fetchone()[0]
    if not built:
        return 0
    return conn.execute(NEW_ERASURES, {"as_of": as_of, "night_end": end_of(as_of)}).rowcount


def execute(
    warehouse_url: str, as_of: date, *, run_id: str | None = None, rules: Policy | None = None
) -> tuple[int, list[Action]]:
    """Carry out the erasure requests known by the end of ``as_of``: the identities
    newly suppressed and what was deleted or emptied."""
    run_id = run_id or f"manual__{datetime.now().isoformat(timespec='seconds')}"
    done = []
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        with conn.transaction():
            added = record_new(conn, as_of)
        targets = conn.execute(
            "select relation, remaining, empty_columns from ops.erasure_conditions(%s::jsonb,"
            " %s, %s, %s, %s)",
            condition_args(rules),
        ).fetchall()
        for relation, remaining, empty in targets:
            table = sql.Identifier(*relation.split("."))
            where = sql.SQL(remaining)  # built by ops.erasure_conditions from the policy
            if empty is None:
                statement = sql.SQL("delete from {} as t where {}").format(table, where)
            else:
                statement = sql.SQL("update {} as t set {} where {}").format(
                    table,
                    sql.SQL(", ").join(
                        sql.SQL("{} = null").format(sql.Identifier(c)) for c in empty
                    ),
                    where,
                )
            with conn.transaction():
                rows = conn.execute(statement).rowcount
                if rows:
                    action = Action(
                        relation, "delete" if empty is None else "empty", tuple(empty or ()), rows
                    )
                    conn.execute(
                        "insert into ops.erasure_actions (run_id, business_date, dataset, action,"
                        " columns_emptied, rows_affected) values (%s, %s, %s, %s, %s, %s)",
                        (run_id, as_of, relation, action.action, list(action.columns), rows),
                    )
                    log.info("erasure: %s", action.sentence())
                    done.append(action)
    return added, done
