"""The checkpoint runner: validate a layer of the warehouse and fail loudly if it is not fit to publish.

``run_gate("raw" | "marts", warehouse_url=..., gx_dir=...)`` builds (or
reuses) a file-backed GX data context in ``gx_dir``, runs one checkpoint per
gate in PostgreSQL (GX's SQL execution engine: counts and checks are SQL, no
rows come back into Python beyond a few samples), rebuilds the Data Docs and
returns a :class:`GateResult`; every expectation's verdict, passed or not, is
also written to ``ops.quality_results`` for trends. It raises :class:`GateFailed` when a critical
expectation failed: the provider's old bug #195 was a gate that logged a
failure and let the task succeed, so publication went ahead anyway.

Every run re-declares the whole configuration from code (suites in
``expectations.raw`` / ``expectations.marts``) with get-or-create and
add-or-update calls, so the same ``gx_dir`` serves run after run and a code
change takes effect on the next run. The context is the record (Data Docs,
validation history), never the source of truth.

The warehouse password is never written into ``gx_dir``: the datasource stores
``${CRM_GX_WAREHOUSE_URL}`` and the real URL is handed to GX at run time as a
runtime config variable.
"""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import psycopg

from expectations import marts, raw
from expectations.spec import CRITICAL, WARNING, TableValidation
from include.config import redact

if TYPE_CHECKING:
    from great_expectations.checkpoint import Checkpoint, CheckpointResult
    from great_expectations.core import ExpectationValidationResult
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.data_context import FileDataContext
    from great_expectations.datasource.fluent import PostgresDatasource

log = logging.getLogger(__name__)

GATES: dict[str, Callable[[date | None], list[TableValidation]]] = {
    "raw": raw.validations,
    "marts": marts.validations,
}

URL_VARIABLE = "CRM_GX_WAREHOUSE_URL"
"""Runtime config variable holding the SQLAlchemy URL; the context stores only its name."""

CONNECTION_TEMPLATE = "${" + URL_VARIABLE + "}"
BATCH_DEFINITION = "whole_table"
DOCS_SITE = "local_site"
APPLICATION_NAME = "crm-gx-gate"

# UpdateDataDocsAction rebuilds the index once per validation in the run, and
# each rebuild reads every stored result the index lists: without a limit the
# gate got slower every night (raw: 3.5 s on day 1, 7+ s after 40 runs). 100 is
# about a week of nightly results; older pages stay on disk, just unlisted.
VALIDATION_RESULTS_IN_INDEX = 100

DOCS_SITE_CONFIG: dict[str, Any] = {
    "class_name": "SiteBuilder",
    "show_how_to_buttons": False,
    "store_backend": {
        "class_name": "TupleFilesystemStoreBackend",
        "base_directory": f"uncommitted/data_docs/{DOCS_SITE}/",
    },
    "site_index_builder": {
        "class_name": "DefaultSiteIndexBuilder",
        "validation_results_limit": VALIDATION_RESULTS_IN_INDEX,
    },
}


@dataclass
class GateResult:
    """What a gate run found. ``success`` is False only when a critical expectation failed."""

    success: bool
    critical_failures: list[str]
    warning_failures: list[str]
    data_docs_index: Path
    gate: str = ""
    business_date: date | None = None
    elapsed_seconds: float = field(default=0.0, compare=False)

    def report(self) -> str:
        """A few lines for the task log: verdict, every failure, where the details are."""
        verdict = "passed" if self.success else "FAILED"
        when = self.business_date.isoformat() if self.business_date else "all dates"
        lines = [f"{self.gate} gate {verdict} ({when}, {self.elapsed_seconds:.1f} s)"]
        if self.critical_failures:
            lines.append(f"{len(self.critical_failures)} critical failure(s):")
            lines += [f"  - {failure}" for failure in self.critical_failures]
        if self.warning_failures:
            lines.append(f"{len(self.warning_failures)} warning(s), not blocking:")
            lines += [f"  - {failure}" for failure in self.warning_failures]
        lines.append(f"Data Docs: {self.data_docs_index}")
        return "\n".join(lines)


class GateFailed(Exception):
    """A critical expectation failed: stop the run, publish nothing.

    The message lists the critical failures and the Data Docs path; ``result``
    holds the whole :class:`GateResult`.
    """

    def __init__(self, message: str, result: GateResult | None = None):
        super().__init__(message)
        self.result = result


def run_gate(
    gate: str,
    *,
    warehouse_url: str,
    gx_dir: Path,
    business_date: date | None = None,
    dag_run_id: str | None = None,
) -> GateResult:
    """Validate one layer of the warehouse; raise :class:`GateFailed` on a critical failure.

    Args:
        gate: ``"raw"`` or ``"marts"``.
        warehouse_url: ``postgresql://user:password@host:port/dbname`` over TCP.
        gx_dir: folder of the file data context; created if missing, reused after.
        business_date: the Hong Kong business date of the run (a ``date``, not a
            ``datetime``: a UTC timestamp's date is often the wrong HK day). The
            raw gate checks the load ledger for that date, or every date if None.
        dag_run_id: the Airflow run, recorded with each result in ``ops.quality_results``.

    Returns the :class:`GateResult` when no critical expectation failed
    (warnings are listed in it and logged).
    """
    started = time.perf_counter()
    if gate not in GATES:
        raise ValueError(f"unknown gate {gate!r}: expected one of {', '.join(sorted(GATES))}")
    if isinstance(business_date, datetime) or not isinstance(business_date, date | None):
        raise TypeError(
            f"business_date must be a datetime.date (the Hong Kong business day), "
            f"got {business_date!r}"
        )
    sqlalchemy_url, session_options = gx_connection_url(warehouse_url)
    validations = GATES[gate](business_date)

    # GX reports a missing table as an exception buried in every expectation's
    # result; look first and say it in one sentence instead.
    missing = _missing_tables(warehouse_url, [v.qualified_name for v in validations])
    present = [v for v in validations if v.qualified_name not in missing]
    outcomes = [
        Outcome(
            table=name,
            suite=None,
            expectation="table_exists",
            column=None,
            severity=CRITICAL,
            success=False,
            observed=None,
            unexpected_count=None,
            detail=f"{name}: table does not exist (the {gate} gate cannot check it; "
            f"did the step that builds it run?)",
        )
        for name in missing
    ]

    gx_dir = Path(gx_dir).resolve()
    gx_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(gx_dir):
        context = _context(gx_dir, sqlalchemy_url)
        if present:
            checkpoint = _checkpoint(context, gate, present, session_options)
            outcomes += _outcomes(checkpoint.run(), present)
        else:
            context.build_data_docs(site_names=[DOCS_SITE])
        docs_index = _docs_index(context, gx_dir)

    critical = [o.detail for o in outcomes if not o.success and o.severity == CRITICAL]
    warnings = [o.detail for o in outcomes if not o.success and o.severity == WARNING]
    _record(warehouse_url, gate, business_date, dag_run_id, outcomes, docs_index)
    result = GateResult(
        success=not critical,
        critical_failures=critical,
        warning_failures=warnings,
        data_docs_index=docs_index,
        gate=gate,
        business_date=business_date,
        elapsed_seconds=time.perf_counter() - started,
    )
    if not result.success:
        raise GateFailed(result.report(), result)
    if warnings:
        log.warning(result.report())
    else:
        log.info(result.report())
    return result


def gx_connection_url(warehouse_url: str) -> tuple[str, str]:
    """The SQLAlchemy URL GX connects with (psycopg 3 over TCP), and the URL's session
    ``options`` (the pipeline role, include/roles.py), which GX's per-schema
    ``options`` would otherwise replace.

    GX's Postgres datasource refuses a socket-folder host, and a driverless URL
    means psycopg2 or psycopg depending on the SQLAlchemy version, so both are
    settled here with a message that names the setting.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    shown = redact(warehouse_url)
    try:
        url = make_url(warehouse_url)
    except ArgumentError:
        raise ValueError(
            f"warehouse_url must look like postgresql://user:password@host:port/dbname, "
            f"got {shown!r}"
        ) from None
    if url.drivername not in ("postgresql", "postgres"):
        raise ValueError(f"warehouse_url must be a postgresql:// URL, got {shown!r}")
    if not url.host or url.host.startswith("/") or "host" in url.query:
        raise ValueError(
            f"warehouse_url must name a TCP host such as 127.0.0.1 (GX cannot use a "
            f"socket folder), got {shown!r}"
        )
    if not url.database:
        raise ValueError(f"warehouse_url must name a database, got {shown!r}")
    options = url.query.get("options", "")
    url = url.difference_update_query(["options"]).set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False), str(options)


def _missing_tables(warehouse_url: str, names: list[str]) -> list[str]:
    """Those of ``names`` (``schema.table``) that are neither a table nor a view."""
    with psycopg.connect(
        warehouse_url, connect_timeout=10, application_name=APPLICATION_NAME
    ) as conn:
        rows = conn.execute(
            "select name from unnest(%s::text[]) with ordinality as t(name, n)"
            " where to_regclass(name) is null order by n",
            (names,),
        ).fetchall()
    return [name for (name,) in rows]


@contextmanager
def _exclusive(gx_dir: Path) -> Iterator[None]:
    """One gate run at a time per ``gx_dir``.

    GX rewrites ``great_expectations.yml`` whole from the copy it read at
    start-up, so two runs in parallel (a backfill next to the nightly run)
    would silently drop each other's datasources.
    """
    with open(gx_dir / ".gate.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _context(gx_dir: Path, sqlalchemy_url: str) -> FileDataContext:
    """The file data context in ``gx_dir`` (scaffolded on first use), configured for us."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(
        mode="file",
        context_root_dir=gx_dir,
        runtime_environment={URL_VARIABLE: sqlalchemy_url},
    )
    variables = context.variables
    changed = False
    if variables.analytics_enabled is not False:
        variables.analytics_enabled = False
        changed = True
    # tqdm bars on stderr would bury the failure list in the Airflow task log. The
    # setting reads back from the YAML as a plain dict, not a ProgressBarsConfig.
    bars = variables.progress_bars
    bars = bars if isinstance(bars, dict) else vars(bars) if bars is not None else {}
    if bars != {"globally": False, "metric_calculations": False}:
        variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        changed = True
    if (variables.data_docs_sites or {}) != {DOCS_SITE: DOCS_SITE_CONFIG}:
        variables.data_docs_sites = {DOCS_SITE: DOCS_SITE_CONFIG}
        changed = True
    if changed:
        variables.save()
    return context


def _datasource(context: FileDataContext, schema: str, options: str = "") -> PostgresDatasource:
    """One datasource per schema (search_path in the connection): get it, or (re)create it.

    GX 1.14 deprecated ``schema_name`` on table assets in favour of the schema
    in the datasource's connection, hence ``warehouse_raw``, ``warehouse_ops``
    and ``warehouse_marts`` instead of one datasource.
    """
    name = f"warehouse_{schema}"
    kwargs = {
        "connect_args": {
            "options": " ".join(o for o in (f"-csearch_path={schema}", options) if o),
            "application_name": APPLICATION_NAME,
        }
    }
    try:
        datasource = context.data_sources.get(name)
    except KeyError:
        datasource = None
    if (
        datasource is None
        or str(datasource.connection_string) != CONNECTION_TEMPLATE
        or datasource.kwargs != kwargs
    ):
        # Replacing a datasource drops its assets; _batch_definition re-adds them.
        datasource = context.data_sources.add_or_update_postgres(
            name=name, connection_string=CONNECTION_TEMPLATE, kwargs=kwargs
        )
    return datasource


def _batch_definition(datasource: PostgresDatasource, table: str) -> BatchDefinition:
    """The whole-table batch definition of ``table``: get it, or create asset and definition."""
    try:
        asset = datasource.get_asset(table)
    except LookupError:
        asset = datasource.add_table_asset(name=table, table_name=table)
    try:
        return asset.get_batch_definition(BATCH_DEFINITION)
    except KeyError:
        return asset.add_batch_definition_whole_table(BATCH_DEFINITION)


def _checkpoint(
    context: FileDataContext, gate: str, present: list[TableValidation], options: str = ""
) -> Checkpoint:
    """Suites, validation definitions and the gate's checkpoint, added or updated from code."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    schemas = {v.schema for v in present}
    datasources = {schema: _datasource(context, schema, options) for schema in schemas}
    suites: dict[str, gx.ExpectationSuite] = {}
    definitions = []
    for validation in present:
        if validation.suite_name not in suites:
            suites[validation.suite_name] = context.suites.add_or_update(
                gx.ExpectationSuite(
                    name=validation.suite_name, expectations=validation.expectations
                )
            )
        definitions.append(
            gx.ValidationDefinition(
                name=f"{validation.qualified_name}.{validation.suite_name}",
                data=_batch_definition(datasources[validation.schema], validation.table),
                suite=suites[validation.suite_name],
            )
        )
    return context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=f"{gate}_gate",
            validation_definitions=definitions,
            actions=[UpdateDataDocsAction(name="update_data_docs", site_names=[DOCS_SITE])],
        )
    )


@dataclass(frozen=True)
class Outcome:
    """One expectation's verdict on one table, as recorded in ``ops.quality_results``."""

    table: str
    suite: str | None
    expectation: str
    column: str | None
    severity: str
    success: bool
    observed: str | None
    unexpected_count: int | None
    detail: str


def _outcomes(checkpoint_result: CheckpointResult, present: list[TableValidation]) -> list[Outcome]:
    """Every expectation result of the run, passed or failed, with a readable description."""
    tables = {(f"warehouse_{v.schema}", v.table): v.qualified_name for v in present}
    outcomes: list[Outcome] = []
    for suite_result in checkpoint_result.run_results.values():
        batch = suite_result.meta.get("active_batch_definition") or {}
        table = tables.get(
            (batch.get("datasource_name"), batch.get("data_asset_name")), suite_result.suite_name
        )
        for expectation_result in suite_result.results:
            config = expectation_result.expectation_config
            result = expectation_result.result or {}
            observed = result.get("observed_value")
            level = _severity(expectation_result)
            outcomes.append(
                Outcome(
                    table=table,
                    suite=suite_result.suite_name,
                    expectation=config.type,
                    column=config.kwargs.get("column"),
                    severity=WARNING if level == WARNING else CRITICAL,
                    success=bool(expectation_result.success),
                    observed=None if observed is None else str(observed)[:1000],
                    unexpected_count=result.get("unexpected_count"),
                    detail=_describe(table, expectation_result),
                )
            )
    return outcomes


def _record(
    warehouse_url: str,
    gate: str,
    business_date: date | None,
    dag_run_id: str | None,
    outcomes: list[Outcome],
    docs_index: Path,
) -> None:
    """Append the run's verdicts to ``ops.quality_results`` in one transaction."""
    with (
        psycopg.connect(
            warehouse_url, connect_timeout=10, application_name=APPLICATION_NAME
        ) as conn,
        conn.cursor() as cur,
    ):
        cur.executemany(
            "insert into ops.quality_results (gate, business_date, dag_run_id, table_name, suite,"
            " expectation, column_name, severity, success, observed, unexpected_count, detail,"
            " data_docs) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (gate, business_date, dag_run_id, o.table, o.suite, o.expectation, o.column,
                 o.severity, o.success, o.observed, o.unexpected_count, o.detail, str(docs_index))
                for o in outcomes
            ],
        )  # fmt: skip


def _severity(expectation_result: ExpectationValidationResult) -> str:
    """``meta["severity"]``, else GX's own field; anything unknown counts as critical."""
    config = expectation_result.expectation_config
    level = (config.meta or {}).get("severity") or config.severity
    return str(getattr(level, "value", level))


def _describe(table: str, expectation_result: ExpectationValidationResult) -> str:
    """E.g. ``raw.pos_lines: expect_table_row_count_to_be_between failed (observed 0)``.

    Passed results read the same, with ``passed``: they are recorded too.
    """
    config = expectation_result.expectation_config
    column = config.kwargs.get("column")
    text = f"{table}.{column}" if column else table
    text += f": {config.type} {'passed' if expectation_result.success else 'failed'}"
    error = _exception_message(expectation_result.exception_info)
    result = expectation_result.result or {}
    if error:
        text += f" (could not run: {error})"
    elif "observed_value" in result:
        text += f" (observed {result['observed_value']})"
    elif "unexpected_count" in result:
        sample = ", ".join(repr(value) for value in result.get("partial_unexpected_list", [])[:5])
        text += (
            f" ({result['unexpected_count']} of {result.get('element_count')} rows unexpected"
            f"{', e.g. ' + sample if sample else ''})"
        )
    if config.description:
        text += f": {config.description}"
    return text


def _exception_message(exception_info: dict | None) -> str | None:
    """First line of the error GX caught while computing a metric, if any.

    GX 1.24 stores either one ``{"raised_exception": ...}`` dict or one such
    dict per failed metric.
    """
    if not exception_info:
        return None
    entries = [exception_info] if "raised_exception" in exception_info else exception_info.values()
    for entry in entries:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            message = str(entry.get("exception_message") or "unknown error").strip()
            return message.splitlines()[0] if message else "unknown error"
    return None


def _docs_index(context: FileDataContext, gx_dir: Path) -> Path:
    """The local path of the Data Docs index page."""
    urls = context.get_docs_sites_urls(site_name=DOCS_SITE, only_if_exists=False)
    url = urls[0]["site_url"] if urls else None
    if url and url.startswith("file://"):
        return Path(url2pathname(urlsplit(url).path))
    return gx_dir / "uncommitted" / "data_docs" / DOCS_SITE / "index.html"
