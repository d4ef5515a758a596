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
current, so a replay of a recent night sees what that night saw. The condition
is written once, in ``ops.retention_conditions`` (include/sql/018): the purge
acts on the rows it selects and the marts gate's ``privacy_retention`` check
counts them after the build.

The files the project keeps outside the warehouse (the policy's ``files``: the
landing zone, logs, GX results, model artefacts, access-request packages) are
purged the same night by :func:`purge_files`, each set one audited step
``files:<name>``.

Idempotent (an emptied row no longer matches, a deleted one is gone), batched
(``BATCH_ROWS`` rows a transaction, so a long purge holds no long lock and a
killed one keeps what it committed) and audited: every batch is a row of
``ops.retention_actions`` written in its own transaction; a dry run records what
it would do with ``dry_run`` set and changes nothing else.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from include.landing import Landing
from include.privacy import LANDING, Policy, policy

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
    #: the rows it applies to, as SQL over ``t`` (ops.retention_conditions); None: none
    remaining: str | None = field(default=None, repr=False)

    def sentence(self) -> str:
        files = self.dataset.startswith("files:")
        if not self.found:
            return f"{self.dataset}: no such {'folder' if files else 'table'} yet, nothing to purge"
        what = "delete" if self.action == "delete" else f"empty {', '.join(self.columns)} of"
        unit = "file(s)" if files else "row(s)"
        return f"{self.dataset}: {what} {self.rows:,} {unit} older than {self.cutoff:%Y-%m-%d}"


def condition_args(rules: Policy | None = None) -> str:
    """The ``rules`` argument of ``ops.retention_conditions`` and ``ops.rows_past_retention``:
    every dataset with a retention period, as JSON."""
    rules = rules or policy()
    out = {}
    for name in tables(rules):
        dataset = rules.datasets[name]
        retention = dataset.retention
        out[name] = {
            "days": retention.days,
            "from": retention.column,
            "action": retention.action,
            "hold_days": dataset.legal_hold_days,
            "personal": sorted(c for c, spec in dataset.columns.items() if spec.is_personal),
            "versions_of": list(retention.versions_of),
        }
    return json.dumps(out, sort_keys=True)


def tables(rules: Policy | None = None) -> list[str]:
    """The datasets with a retention period: the purge visits each that is a table."""
    rules = rules or policy()
    return sorted(
        name for name, d in rules.datasets.items() if d.retention and d.retention != "derived"
    )


def _conditions(conn: psycopg.Connection, as_of: date, rules: Policy) -> list[tuple]:
    """(relation, action, cutoff, columns, remaining, found) of each retention table
    for the business date ``as_of`` (``ops.retention_conditions``)."""
    from include.pipeline import end_of

    return conn.execute(
        "select relation, action, cutoff, empty_columns, remaining, table_found"
        " from ops.retention_conditions(%s::jsonb, %s)",
        (condition_args(rules), end_of(as_of)),
    ).fetchall()


def plan(conn: psycopg.Connection, as_of: date, rules: Policy | None = None) -> list[Step]:
    """Every dataset's step for the business date ``as_of``, with the rows it applies to."""
    steps = []
    for relation, action, cutoff, columns, remaining, found in _conditions(
        conn, as_of, rules or policy()
    ):
        rows = 0
        if remaining is not None:  # built by ops.retention_conditions from the policy
            (rows,) = conn.execute(
                sql.SQL("select count(*) from {} as t where {}").format(
                    sql.Identifier(*relation.split(".")), sql.SQL(remaining)
                )
            ).fetchone()
        steps.append(Step(relation, action, cutoff, tuple(columns), rows, found, remaining))
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
            table = sql.Identifier(*step.dataset.split("."))
            batch = sql.SQL(
                "t.ctid = any(array(select t.ctid from {} as t where {} limit {}))"
            ).format(table, sql.SQL(step.remaining), sql.Literal(batch_rows))
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


def _old_files(folder: Path, cutoff: datetime) -> list[Path]:
    """The files under ``folder`` last changed before ``cutoff``."""
    if not folder.is_dir():
        return []
    stamp = cutoff.timestamp()
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.stat().st_mtime < stamp)


def _remove_empty_folders(folder: Path) -> None:
    for path in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        if not any(path.iterdir()):
            path.rmdir()


def _loaded_landing_files(conn: psycopg.Connection, before: date) -> list[tuple[str, str]]:
    """(key, checksum) of each landing file whose latest ledger entry is a load of a
    business date before ``before``; sources replaced whole under one key are kept."""
    from include.contract import sources

    whole = sorted(name for name, source in sources().items() if source.replaced_whole)
    return conn.execute(
        """
        select latest.object, latest.checksum
        from (
            select distinct on (ledger.source, ledger.object)
                ledger.object, ledger.checksum, ledger.status, ledger.business_date
            from ops.load_ledger as ledger
            where ledger.source <> 'shop' and ledger.source <> all(%s)
            order by ledger.source, ledger.object, ledger.load_id desc
        ) as latest
        where latest.status = 'loaded' and latest.business_date < %s
          and latest.checksum is not null
        order by latest.object
        """,
        (whole, before),
    ).fetchall()


def purge_files(
    warehouse_url: str,
    as_of: date,
    *,
    home: Path,
    landing: Landing,
    dry_run: bool = False,
    run_id: str | None = None,
    rules: Policy | None = None,
) -> list[Step]:
    """Delete (or, ``dry_run``, count) the files of the policy's ``files`` older than
    their retention at the end of ``as_of``: one audited step per file set, named
    ``files:<name>``. A landing file goes only once loaded, with the bytes the
    ledger recorded; a CRM_HOME folder's files by modification time."""
    from include.pipeline import end_of

    rules = rules or policy()
    run_id = run_id or f"manual__{datetime.now().isoformat(timespec='seconds')}"
    night_end = end_of(as_of)
    done = []
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        for name, files in sorted(rules.files.items()):
            cutoff = night_end - timedelta(days=files.days)
            deleted = 0
            if files.where == LANDING:
                found = True
                expired = _loaded_landing_files(conn, as_of - timedelta(days=files.days))
                if dry_run:
                    deleted = len(expired)
                else:
                    for key, checksum in expired:
                        try:
                            deleted += landing.delete_if_loaded(key, checksum)
                        except OSError as exc:  # one file never stops the others
                            log.warning("retention: landing file %s not deleted: %s", key, exc)
            else:
                folder = home / files.where
                found = folder.is_dir()
                old = _old_files(folder, cutoff)
                deleted = len(old)
                if not dry_run and old:
                    for path in old:
                        path.unlink(missing_ok=True)
                    _remove_empty_folders(folder)
            step = Step(f"files:{name}", "delete", cutoff, (), deleted, found)
            with conn.transaction():
                _record(conn, run_id, as_of, step, deleted, dry_run)
            if deleted:
                log.info("retention: %s", step.sentence())
            done.append(step)
    return done


def purge_night(
    warehouse_url: str, as_of: date, *, dry_run: bool = False, run_id: str | None = None
) -> list[Step]:
    """The night's whole retention: the warehouse's tables, then the files of this
    installation (CRM_HOME and the landing zone of :func:`include.config.settings`)."""
    from include.config import settings
    from include.landing import landing_from_url

    cfg = settings()
    run_id = run_id or f"manual__{datetime.now().isoformat(timespec='seconds')}"
    return purge(warehouse_url, as_of, dry_run=dry_run, run_id=run_id) + purge_files(
        warehouse_url,
        as_of,
        home=cfg.home,
        landing=landing_from_url(cfg.landing_url),
        dry_run=dry_run,
        run_id=run_id,
    )
