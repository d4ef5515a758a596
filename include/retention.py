"""The retention purge: personal data kept no longer than the policy says (PDPO DPP2(2)).

For every dataset of contract/privacy.yml with a retention period that is a table
of the warehouse (raw, quarantine, the snapshots; staging views and dbt's tables
are ``derived`` and forget what they read), the rows whose ``from`` column is
older than ``days`` before the end of the business date are:

- ``delete``: deleted;
- ``anonymise``: every personal or sensitive column of the policy that may be
  null is emptied, the row (sales lines, events: de-identified facts) stays.

A legal hold (``legal_hold.days``) keeps rows that long whatever the
retention, so a ``delete`` within the hold only anonymises. ``versions_of``
limits a versioned table to the versions a newer one of the same key replaced
more than ``days`` ago: a version is kept that long after it stopped being
current, so a replay of a recent night sees what that night saw.

Idempotent (an emptied row no longer matches, a deleted one is gone), batched
(``BATCH_ROWS`` rows a transaction, so a long purge holds no long lock and a
killed one keeps what it committed) and audited: every batch is a row of
``ops.retention_actions`` written in its own transaction; a dry run records what
it would do with ``dry_run`` set and changes nothing else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import psycopg
from psycopg import sql

from include.privacy import Dataset, Policy, policy

log = logging.getLogger(__name__)

BATCH_ROWS = 10_000


@dataclass(frozen=True)
class Step:
    """What the purge does to one dataset on one night."""

    dataset: str
    action: str  # delete | anonymise
    cutoff: datetime
    columns: tuple[str, ...]  # emptied by anonymise
    rows: int  # rows it applies to (before a run; what a dry run reports)
    found: bool = True  # False: no such table yet (recorded, nothing to do)

    def sentence(self) -> str:
        if not self.found:
            return f"{self.dataset}: no such table yet, nothing to purge"
        what = "delete" if self.action == "delete" else f"empty {', '.join(self.columns)} of"
        return f"{self.dataset}: {what} {self.rows:,} row(s) older than {self.cutoff:%Y-%m-%d}"


def _nullable_columns(conn: psycopg.Connection, relation: str) -> set[str] | None:
    """The columns of a base table that may be null; None if no such table."""
    found = conn.execute(
        """
        select cls.relkind, array_agg(att.attname::text) filter (where not att.attnotnull)
        from pg_class as cls
        join pg_attribute as att on att.attrelid = cls.oid and att.attnum > 0
            and not att.attisdropped
        where cls.oid = to_regclass(%s)
        group by cls.relkind
        """,
        (relation,),
    ).fetchone()
    if found is None or found[0] not in ("r", "p"):
        return None
    return set(found[1] or ())


def _condition(dataset: Dataset, cutoff: datetime, columns: tuple[str, ...]) -> sql.Composable:
    retention = dataset.retention
    column = sql.Identifier(retention.column)
    parts = [sql.SQL("t.{} < {}").format(column, sql.Literal(cutoff))]
    if columns:
        parts.append(
            sql.SQL("({})").format(
                sql.SQL(" or ").join(
                    sql.SQL("t.{} is not null").format(sql.Identifier(c)) for c in columns
                )
            )
        )
    if retention.versions_of:
        schema, name = dataset.name.split(".")
        same_key = sql.SQL(" and ").join(
            sql.SQL("newer.{c} = t.{c}").format(c=sql.Identifier(k)) for k in retention.versions_of
        )
        # replaced before the cutoff: a version is kept `days` after it stopped being current
        parts.append(
            sql.SQL(
                "exists (select 1 from {} as newer where {} and newer.{} > t.{} and newer.{} < {})"
            ).format(
                sql.Identifier(schema, name), same_key, column, column, column, sql.Literal(cutoff)
            )
        )
    return sql.SQL(" and ").join(parts)


def tables(rules: Policy | None = None) -> list[str]:
    """The datasets with a retention period: the purge visits each that is a table."""
    rules = rules or policy()
    return sorted(
        name for name, d in rules.datasets.items() if d.retention and d.retention != "derived"
    )


def plan(conn: psycopg.Connection, as_of: date, rules: Policy | None = None) -> list[Step]:
    """Every dataset's step for the business date ``as_of``, with the rows it applies to."""
    from include.pipeline import end_of

    rules = rules or policy()
    night_end = end_of(as_of)
    steps = []
    for name in tables(rules):
        dataset = rules.datasets[name]
        retention = dataset.retention
        nullable = _nullable_columns(conn, name)
        action = retention.action
        cutoff = night_end - timedelta(days=retention.days)
        if nullable is None:  # not built yet (a snapshot before the first build)
            steps.append(Step(name, action, cutoff, (), 0, found=False))
            continue
        if action == "delete" and dataset.legal_hold_days:
            hold_end = night_end - timedelta(days=dataset.legal_hold_days)
            if hold_end < cutoff:
                action = "anonymise"  # within the hold: de-identified, not deleted
        columns = ()
        if action == "anonymise":
            columns = tuple(
                c
                for c, spec in sorted(dataset.columns.items())
                if spec.is_personal and c in nullable
            )
            if not columns:  # nothing it could empty: checked, recorded, nothing to do
                steps.append(Step(name, action, cutoff, columns, 0))
                continue
        schema, relation = name.split(".")
        (rows,) = conn.execute(
            sql.SQL("select count(*) from {} as t where {}").format(
                sql.Identifier(schema, relation), _condition(dataset, cutoff, columns)
            )
        ).fetchone()
        steps.append(Step(name, action, cutoff, columns, rows))
    return steps


def _record(conn, run_id, as_of, step: Step, rows: int, dry_run: bool) -> None:
    conn.execute(
        "insert into ops.retention_actions (run_id, business_date, dataset, action, cutoff,"
        " columns_emptied, rows_affected, dry_run, table_found)"
        " values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            run_id,
            as_of,
            step.dataset,
            step.action,
            step.cutoff,
            list(step.columns),
            rows,
            dry_run,
            step.found,
        ),
    )


def purge(
    warehouse_url: str,
    as_of: date,
    *,
    dry_run: bool = False,
    run_id: str | None = None,
    batch_rows: int = BATCH_ROWS,
    rules: Policy | None = None,
) -> list[Step]:
    """Apply (or, ``dry_run``, only plan and record) the night's retention; the steps,
    each with the rows it changed (or would change)."""
    rules = rules or policy()
    run_id = run_id or f"manual__{datetime.now().isoformat(timespec='seconds')}"
    done = []
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        for step in plan(conn, as_of, rules):
            if dry_run or step.rows == 0:
                with conn.transaction():
                    _record(conn, run_id, as_of, step, step.rows, dry_run)
                done.append(step)
                continue
            dataset = rules.datasets[step.dataset]
            schema, relation = step.dataset.split(".")
            table = sql.Identifier(schema, relation)
            batch = sql.SQL(
                "t.ctid = any(array(select t.ctid from {} as t where {} limit {}))"
            ).format(table, _condition(dataset, step.cutoff, step.columns), sql.Literal(batch_rows))
            if step.action == "delete":
                statement = sql.SQL("delete from {} as t where {}").format(table, batch)
            else:
                statement = sql.SQL("update {} as t set {} where {}").format(
                    table,
                    sql.SQL(", ").join(
                        sql.SQL("{} = null").format(sql.Identifier(c)) for c in step.columns
                    ),
                    batch,
                )
            total = 0
            while True:
                with conn.transaction():
                    changed = conn.execute(statement).rowcount
                    if changed:
                        _record(conn, run_id, as_of, step, changed, False)
                total += changed
                if changed < batch_rows:
                    break
            if total == 0:
                with conn.transaction():
                    _record(conn, run_id, as_of, step, 0, False)
            log.info("retention: %s", step.sentence())
            done.append(Step(step.dataset, step.action, step.cutoff, step.columns, total))
    return done
