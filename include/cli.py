"""The ``crm`` command line: warehouse lifecycle, simulator, pipeline runs, Airflow.

Every subcommand has ``--help``. Errors the user can act on (:class:`CrmError`)
print one clear message and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path

from include.config import (
    CrmError,
    airflow_open_ui,
    crm_home,
    redact,
    settings,
    without_password,
)


def _warehouse(args: argparse.Namespace) -> int:
    from include.warehouse import EmbeddedWarehouse

    server = EmbeddedWarehouse(crm_home())
    if args.action == "start":
        print(server.start())
    elif args.action == "stop":
        print(server.stop())
    elif args.action == "status":
        status = server.status()
        print(status.message)
        return 0 if status.running else 3
    elif args.action == "url":
        url = server.url(args.database)
        print(url if args.with_password else redact(url))
    elif args.action == "psql":
        from urllib.parse import urlsplit

        from include.warehouse import find_bin_dir

        # the password goes in psql's environment, never on its command line (ps shows it)
        url = server.url(args.database)
        env = {**os.environ, "PGPASSWORD": urlsplit(url).password or ""}
        os.execve(str(find_bin_dir() / "psql"), ["psql", without_password(url), *args.extra], env)
    elif args.action == "destroy":
        if not args.yes:
            raise CrmError("'crm warehouse destroy' deletes every database: add --yes to confirm.")
        print(server.destroy())
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from include.simulator import simulate

    cfg = settings()
    if cfg.landing_url.startswith("s3://"):
        raise CrmError(
            "The simulator writes a local landing folder: unset LANDING_URL or make it a path."
        )
    summary = simulate(
        shop_url=cfg.shop_url,
        landing_dir=_path(cfg.landing_url),
        ground_truth_dir=cfg.ground_truth_dir,
        start=args.start,
        days=args.days,
        seed=args.seed,
        customers=args.customers,
        stores=args.stores,
        progress=not args.quiet,
    )
    print(summary)
    return 0


def _path(url: str):
    return Path(url.removeprefix("file://"))


def _run(args: argparse.Namespace) -> int:
    from include.airflow_env import check_business_dates
    from include.nights import run_nights

    # The whole range is checked before Airflow starts: all nights or none.
    check_business_dates(args.date, args.days)
    run_nights(args.date, args.days, progress=not args.verbose)
    return 0


def _airflow(args: argparse.Namespace) -> int:
    from include.airflow_env import airflow_env

    env = airflow_env()
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    # exec, not a child: a signal to `crm airflow ...` (a container stop) reaches Airflow.
    os.execve(airflow, [airflow, *args.extra], env)


def _demo(args: argparse.Namespace) -> int:
    from include.demo import run_demo

    run_demo(history_days=args.history_days, nightly_days=args.nightly_days, seed=args.seed)
    return 0


def _stack(args: argparse.Namespace) -> int:
    from include import airflow_stack

    if args.action == "start":
        executor = "CeleryExecutor" if args.executor == "celery" else "LocalExecutor"
        state = airflow_stack.start(
            executor=executor, workers=args.workers, schedule=not args.no_schedule
        )
        print(f"Airflow running ({state.executor}): UI and API at {state.url}")
        login = airflow_stack.ui_passwords_file()
        if login.exists() and not airflow_open_ui():
            print(f"login: {airflow_stack.UI_USER}, password in {login} (readable by you only)")
        print(f"logs: {settings().home / 'logs' / 'airflow'}; stop with 'crm stack stop'")
        return 0
    if args.action == "stop":
        print(airflow_stack.stop())
        return 0
    running, text = airflow_stack.status()
    print(text)
    return 0 if running else 3


def _api():
    from include import airflow_stack

    url = os.environ.get("CRM_AIRFLOW_API_URL")  # a deployment's API server (compose)
    state = airflow_stack.read_state()
    if not url and state is None:
        raise CrmError(
            "No Airflow stack is running here: start one with 'crm stack start' "
            "(or set CRM_AIRFLOW_API_URL to a running API server)."
        )
    if url:
        return airflow_stack.AirflowApi(url)
    return airflow_stack.api_for(state)


def _trigger(args: argparse.Namespace) -> int:
    from include.airflow_env import check_business_dates

    check_business_dates(args.date, 1)
    api = _api()
    run_id = api.trigger(args.date)
    print(f"triggered crm_nightly for {args.date}: run {run_id}")
    if args.no_wait:
        return 0
    state = api.wait_run(run_id)
    print(f"run {run_id}: {state}")
    return 0 if state == "success" else 1


def _backfill(args: argparse.Namespace) -> int:
    from include.airflow_env import check_business_dates

    days = (args.to - args.start).days + 1
    if days < 1:
        raise CrmError("--to must not be before --from.")
    check_business_dates(args.start, days)
    api = _api()
    backfill_id = api.backfill(args.start, args.to)
    print(f"backfill {backfill_id}: nights {args.start} to {args.to}, one at a time in date order")
    if args.no_wait:
        return 0
    api.wait_backfill(backfill_id)
    states = api.night_states(args.start, args.to)
    for night in sorted(states):
        print(f"  night {night}: {states[night]}")
    if len(states) != days or any(s != "success" for s in states.values()):
        raise CrmError(f"backfill {backfill_id} did not run every night successfully: see the UI.")
    print(f"backfill {backfill_id} completed: {days} night(s) succeeded")
    return 0


def _env(args: argparse.Namespace) -> int:
    cfg = settings()
    print(f"CRM_HOME={cfg.home}")
    print(f"WAREHOUSE_URL={redact(cfg.warehouse_url)}")
    print(f"SHOP_DB_URL={redact(cfg.shop_url)}")
    print(f"LANDING_URL={cfg.landing_url}")
    return 0


def _contract(args: argparse.Namespace) -> int:
    from include import contract

    if args.action == "write":
        changed = contract.write()
        for path in changed:
            print(f"wrote {path.relative_to(contract.PROJECT)}")
        if not changed:
            print("every generated file already agrees with contract/sources.yml")
        return 0
    stale = [
        path.relative_to(contract.PROJECT)
        for path, text in contract.generated_files().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    for path in stale:
        print(f"{path} disagrees with contract/sources.yml: run 'crm contract write'")
    import psycopg

    with psycopg.connect(settings().warehouse_url) as conn:
        problems = contract.raw_table_drift(conn)
    for problem in problems:
        print(f"warehouse: {problem} (run 'crm warehouse start' to migrate)")
    if not stale and not problems:
        print(f"contract version {contract.version()}: generated files and raw tables agree")
    return 1 if stale or problems else 0


def _report(args: argparse.Namespace) -> int:
    import webbrowser

    from include.pipeline import last_complete_business_date, write_nightly_report

    as_of = args.date or last_complete_business_date()
    path = write_nightly_report(as_of)
    print(f"Nightly report of {as_of}: {path} (department pages beside it)")
    if args.open:
        webbrowser.open(path.as_uri())
    return 0


def _docs(args: argparse.Namespace) -> int:
    """dbt's docs site (every mart and column described, with lineage), generated
    against the warehouse as the publisher and served on 127.0.0.1."""
    import subprocess

    from include import roles
    from include.dbt_build import DBT_PROJECT, dbt_env

    cfg = settings()
    target = cfg.home / "dbt" / "docs"
    env = {**os.environ, **dbt_env(cfg.url_as(roles.PUBLISHER))}
    dbt = str(Path(sys.executable).parent / "dbt")
    common = ["--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT)]
    common += ["--target-path", str(target)]
    subprocess.run(
        [dbt, "docs", "generate", *common, "--log-path", str(cfg.home / "logs" / "dbt")],
        env=env,
        check=True,
    )
    print(f"dbt docs: {target / 'index.html'}")
    if args.no_serve:
        return 0
    print(f"Serving on http://127.0.0.1:{args.port} (Ctrl-C to stop)")
    return subprocess.run(
        [dbt, "docs", "serve", *common, "--host", "127.0.0.1", "--port", str(args.port),
         "--no-browser"],
        env=env,
    ).returncode  # fmt: skip


def _privacy(args: argparse.Namespace) -> int:
    from include.pipeline import last_complete_business_date
    from include.retention import purge_night

    if args.action == "evidence":
        from include.pipeline import evidence_folder
        from include.privacy_report import write

        cfg = settings()
        as_of = args.date or last_complete_business_date()
        print(
            f"Privacy evidence of {as_of}: {write(cfg.warehouse_url, as_of, evidence_folder(cfg.home))}"
        )
        return 0
    if args.action == "access-report":
        from include import access_report

        cfg = settings()
        package = access_report.write(
            cfg.warehouse_url, args.request_id, args.out or cfg.home / "privacy" / "access"
        )
        print(
            f"Data package of privacy request {package.request_id}"
            f" ({len(package.customer_keys)} customer key(s)): {package.path}"
        )
        for table, rows in sorted(package.rows.items()):
            print(f"  {table}: {rows} row(s)")
        print("It holds personal data: review it, send it to the requester, then delete it.")
        return 0

    as_of = args.date or last_complete_business_date()
    steps = purge_night(settings().warehouse_url, as_of, dry_run=args.dry_run)
    verb = "would change" if args.dry_run else "changed"
    print(f"Retention on {as_of} ({verb}; recorded in ops.retention_actions):")
    for step in steps:
        print(f"  {step.sentence()}")
    return 0


def _ledger(args: argparse.Namespace) -> int:
    import psycopg

    from include.ledger import Ledger

    with psycopg.connect(settings().warehouse_url, autocommit=True) as conn:
        ledger = Ledger(conn)
        if args.action == "gaps":
            gaps = ledger.unresolved_gaps()
            for source, day, expected, detected_at in gaps:
                print(f"{source}\t{day}\t{expected}\tmissing since {detected_at:%Y-%m-%d %H:%M}")
            print(f"{len(gaps)} expected file(s) not arrived nor resolved", file=sys.stderr)
            return 0
        if args.action == "resolve-gap":
            try:
                ledger.resolve_gap(args.source, args.business_date, args.expected, args.note)
            except ValueError as exc:
                raise CrmError(str(exc)) from None
            print(f"resolved gap {args.source} {args.business_date} {args.expected}: {args.note}")
            return 0
        if args.action == "failures":
            rows = conn.execute(
                "select load_id, source, object, message from ops.load_ledger"
                " where status = 'failed' and resolved_at is null order by load_id"
            ).fetchall()
            for load_id, source, key, message in rows:
                print(f"{load_id}\t{source}\t{key}\t{message}")
            print(f"{len(rows)} unresolved failed load(s)", file=sys.stderr)
            return 0
        try:
            outcome = ledger.resolve(args.load_id, args.note)
        except ValueError as exc:
            raise CrmError(str(exc)) from None
        print(f"resolved load {outcome.load_id} ({outcome.source} {outcome.object}): {args.note}")
    return 0


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date in YYYY-MM-DD form") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crm",
        description="CRM data platform: embedded warehouse, source simulator and the nightly pipeline.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    wh = sub.add_parser(
        "warehouse", help="start, stop or inspect the embedded PostgreSQL warehouse"
    )
    wh_sub = wh.add_subparsers(dest="action", required=True)
    wh_sub.add_parser(
        "start", help="initialise if needed and start on 127.0.0.1 (no-op when running)"
    )
    wh_sub.add_parser("stop", help="stop the server cleanly")
    wh_sub.add_parser(
        "status", help="explain what is there: running, stopped, stale or half-started"
    )
    for name, text in [
        ("url", "print the URL that psql, dbt and SQLAlchemy accept (password hidden)"),
        ("psql", "open psql"),
    ]:
        p = wh_sub.add_parser(name, help=text)
        p.add_argument(
            "--database", "-d", default="warehouse", choices=["warehouse", "shop", "airflow"]
        )
        if name == "url":
            p.add_argument(
                "--with-password",
                action="store_true",
                help="print the password too (for a script; it is hidden by default)",
            )
    destroy = wh_sub.add_parser("destroy", help="stop the server and delete all its data")
    destroy.add_argument("--yes", action="store_true", help="confirm")
    wh.set_defaults(func=_warehouse)

    sim = sub.add_parser(
        "simulate",
        help="write simulated source data: the shop database and landing-zone files",
        description="First call builds the world from --seed starting at --start; later calls "
        "without --start continue the same world day by day.",
    )
    sim.add_argument("--start", type=_date, help="first day (YYYY-MM-DD); omit to continue")
    sim.add_argument("--days", type=int, default=90, help="days to simulate (default 90)")
    sim.add_argument("--seed", type=int, default=42)
    sim.add_argument("--customers", type=int, default=5000)
    sim.add_argument("--stores", type=int, default=10)
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.set_defaults(func=_simulate)

    run = sub.add_parser(
        "run",
        help="run the nightly DAG with real Airflow (airflow dags test) for business dates",
    )
    run.add_argument(
        "--date", type=_date, required=True, help="Hong Kong business date (YYYY-MM-DD)"
    )
    run.add_argument("--days", type=int, default=1, help="consecutive days from --date (default 1)")
    run.add_argument(
        "--verbose",
        action="store_true",
        help="stream Airflow's output to the terminal instead of a status line per night "
        "(default: output in CRM_HOME/logs/nightly/<date>.log)",
    )
    run.set_defaults(func=_run)

    demo = sub.add_parser(
        "demo", help="simulate history, run several nightly runs, print what was produced"
    )
    demo.add_argument("--history-days", type=int, default=450)
    demo.add_argument("--nightly-days", type=int, default=3)
    demo.add_argument("--seed", type=int, default=42)
    demo.set_defaults(func=_demo)

    af = sub.add_parser(
        "airflow",
        help="run any airflow command against this project's metadata database",
        description="Example: crm airflow dags list. For the scheduler and UI use crm stack start.",
    )
    af.set_defaults(func=_airflow)

    stack = sub.add_parser(
        "stack",
        help="start, stop or inspect a local Airflow: scheduler, dag-processor, triggerer, api-server",
        description="The components a deployment runs, as background processes on this machine, "
        "on the embedded warehouse's metadata database. Logs: CRM_HOME/logs/airflow.",
    )
    stack_sub = stack.add_subparsers(dest="action", required=True)
    stack_start = stack_sub.add_parser("start", help="start every component and wait until healthy")
    stack_start.add_argument(
        "--executor", choices=["local", "celery"], default="local", help="default local"
    )
    stack_start.add_argument(
        "--workers", type=int, default=2, help="Celery workers (default 2; Redis as broker)"
    )
    stack_start.add_argument(
        "--no-schedule",
        action="store_true",
        help="run only triggered runs and backfills, never the nightly schedule",
    )
    stack_sub.add_parser("stop", help="stop every component (SIGTERM, then SIGKILL)")
    stack_sub.add_parser("status", help="which components run, and where the UI is")
    stack.set_defaults(func=_stack)

    trigger = sub.add_parser(
        "trigger", help="trigger the nightly DAG for a business date on the running stack"
    )
    trigger.add_argument("--date", type=_date, required=True, help="Hong Kong business date")
    trigger.add_argument("--no-wait", action="store_true", help="return once triggered")
    trigger.set_defaults(func=_trigger)

    backfill = sub.add_parser(
        "backfill",
        help="re-run nights on the running stack, one at a time in date order",
        description="Airflow backfill with max_active_runs=1 and reprocess_behavior=completed.",
    )
    backfill.add_argument("--from", dest="start", type=_date, required=True)
    backfill.add_argument("--to", type=_date, required=True)
    backfill.add_argument("--no-wait", action="store_true", help="return once created")
    backfill.set_defaults(func=_backfill)

    ledger = sub.add_parser(
        "ledger",
        help="failed loads and missing files: list the unresolved ones, resolve one once dealt with",
    )
    ledger_sub = ledger.add_subparsers(dest="action", required=True)
    ledger_sub.add_parser("failures", help="every failed load not yet resolved")
    resolve = ledger_sub.add_parser(
        "resolve",
        help="mark a failed load as dealt with (e.g. the sender re-sent the file under a new"
        " name): its file stops failing the load task",
    )
    resolve.add_argument("load_id", type=int, help="load_id from 'crm ledger failures'")
    resolve.add_argument("--note", required=True, help="how it was resolved (kept in the ledger)")
    ledger_sub.add_parser("gaps", help="expected files that have not arrived, not resolved")
    resolve_gap = ledger_sub.add_parser(
        "resolve-gap",
        help="mark an expected file that will never come as dealt with (a store closed that"
        " day): it stops failing the raw gate",
    )
    resolve_gap.add_argument("source", help="source from 'crm ledger gaps', e.g. pos")
    resolve_gap.add_argument("business_date", type=_date, help="YYYY-MM-DD")
    resolve_gap.add_argument(
        "expected", help="what was expected, e.g. a store code or web/<date>/<HH>"
    )
    resolve_gap.add_argument(
        "--note", required=True, help="how it was resolved (kept in ops.load_gaps)"
    )
    ledger.set_defaults(func=_ledger)

    contract_cmd = sub.add_parser(
        "contract",
        help="the landing-source contract (contract/sources.yml) and the files made from it",
    )
    contract_sub = contract_cmd.add_subparsers(dest="action", required=True)
    contract_sub.add_parser(
        "write", help="rewrite the dbt source YAML and docs/sources.md from the contract"
    )
    contract_sub.add_parser(
        "check", help="exit 1 if a generated file or the warehouse's raw tables disagree"
    )
    contract_cmd.set_defaults(func=_contract)

    privacy_cmd = sub.add_parser(
        "privacy",
        help="the privacy policy at work (contract/privacy.yml): retention purge, evidence, access reports",
    )
    privacy_sub = privacy_cmd.add_subparsers(dest="action", required=True)
    purge_cmd = privacy_sub.add_parser(
        "purge",
        help="delete or anonymise what is past its retention (the nightly DAG's retention task)",
    )
    purge_cmd.add_argument(
        "--date", type=_date, help="business date (default: the latest complete day)"
    )
    purge_cmd.add_argument(
        "--dry-run", action="store_true", help="only count and record what it would do"
    )
    evidence_cmd = privacy_sub.add_parser(
        "evidence",
        help="write the privacy evidence report of a night (the nightly DAG's privacy_evidence)",
    )
    evidence_cmd.add_argument(
        "--date", type=_date, help="business date (default: the latest complete day)"
    )
    report_cmd = privacy_sub.add_parser(
        "access-report",
        help="write the data package of a data access request (every row about its person)",
    )
    report_cmd.add_argument("request_id", help="the request_id of raw.privacy_requests")
    report_cmd.add_argument(
        "--out", type=Path, help="folder to write it in (default: CRM_HOME/privacy/access)"
    )
    privacy_cmd.set_defaults(func=_privacy)

    report = sub.add_parser(
        "report",
        help="write the nightly report of a business date (the nightly DAG's nightly_report)",
    )
    report.add_argument(
        "--date", type=_date, help="business date (default: the latest complete day)"
    )
    report.add_argument("--open", action="store_true", help="open it in the web browser")
    report.set_defaults(func=_report)
    docs = sub.add_parser(
        "docs", help="generate and serve dbt's docs: every mart and column, with lineage"
    )
    docs.add_argument("--port", type=int, default=8081, help="port on 127.0.0.1 (default 8081)")
    docs.add_argument("--no-serve", action="store_true", help="only generate them")
    docs.set_defaults(func=_docs)

    env = sub.add_parser("env", help="print the resolved settings (passwords hidden)")
    env.set_defaults(func=_env)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `crm warehouse psql ...` and `crm airflow ...` pass the rest through.
    passthrough = args.command == "airflow" or getattr(args, "action", None) == "psql"
    if extra and not passthrough:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        return args.func(args)
    except CrmError as exc:
        print(f"crm: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
