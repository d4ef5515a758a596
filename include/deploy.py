"""The production compose stack (docker-compose.yml): its one-time set-up and its config.

``python -m include.deploy init`` is what the stack's ``airflow-init`` service
runs on every ``docker compose up``, before Airflow's own migrations. It

1. refuses to go on while a secret it was given is still a ``change-me``
   placeholder from ``.env.example``;
2. creates the warehouse's own schemas and tables (``include/sql``, the same
   idempotent DDL ``crm warehouse start`` applies to the embedded server);
3. when ``CRM_SHOP_STANDIN`` is true, creates the shop tables in the stand-in
   shop database, and only in an empty database: a real shop database, which
   always has tables, is never written to.

:func:`compose_environment` reads one service's environment out of the JSON
that ``docker compose config --format json`` prints, for tests and checks that
compare the stack with what the project expects.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from urllib.parse import urlsplit

from include.config import CrmError, check_pg_url, redact

PLACEHOLDER = "change-me"

# Settings that hold a secret, alone or as the password of a URL.
SECRET_SETTINGS = (
    "WAREHOUSE_URL",
    "SHOP_DB_URL",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "CRM_CUSTOMER_KEY_SECRET",
)

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def compose_environment(service: str, compose_json: Mapping) -> dict[str, str]:
    """The environment ``service`` gets, from ``docker compose config --format json``.

    Compose renders ``environment`` as a mapping (a list of ``KEY=value`` is
    accepted too). A key with no value (``KEY:`` in the file, ``null`` in the
    JSON) is left unset in the container, so it is left out here.
    """
    services = compose_json.get("services") or {}
    if service not in services:
        raise KeyError(
            f"no service {service!r} in the compose config (services: {', '.join(sorted(services))})"
        )
    raw = services[service].get("environment") or {}
    if isinstance(raw, list):
        pairs = (item.split("=", 1) if "=" in item else (item, None) for item in raw)
        raw = dict(pairs)
    return {key: str(value) for key, value in raw.items() if value is not None}


def placeholder_secrets(env: Mapping[str, str]) -> list[str]:
    """The secret settings in ``env`` that still hold a ``change-me`` placeholder."""
    found = []
    for name in SECRET_SETTINGS:
        value = env.get(name) or ""
        secret = urlsplit(value).password if "://" in value else value
        if secret and PLACEHOLDER in secret:
            found.append(name)
    return found


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = (env.get(name) or ("true" if default else "false")).strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise CrmError(f"{name} must be true or false (got {value!r}).")


def init_warehouse(warehouse_url: str) -> None:
    """Create the warehouse's own schemas and tables (idempotent)."""
    from include.warehouse import apply_schema

    apply_schema(warehouse_url)


def init_shop_standin(shop_url: str) -> bool:
    """Create the shop tables in an empty stand-in database; True if it did.

    A database that has any table already is left alone: either this ran
    before, or it is a real shop database, which is not ours to change.
    """
    import psycopg

    from include.simulator import shop

    with psycopg.connect(shop_url, autocommit=True) as conn:
        (tables,) = conn.execute(
            "select count(*) from pg_catalog.pg_tables"
            " where schemaname not in ('pg_catalog', 'information_schema')"
        ).fetchone()
        if tables:
            return False
        shop.ensure_schema(conn)
    return True


def init(env: Mapping[str, str]) -> list[str]:
    """The one-time set-up of the compose stack; returns what it did, one line each."""
    placeholders = placeholder_secrets(env)
    if placeholders:
        verb = "holds" if len(placeholders) == 1 else "hold"
        raise CrmError(
            f"{', '.join(placeholders)} still {verb} the '{PLACEHOLDER}' placeholder of "
            ".env.example: set real secrets in .env and run 'docker compose up -d' again."
        )
    for name in ("WAREHOUSE_URL", "SHOP_DB_URL"):
        if not env.get(name):
            raise CrmError(f"{name} is not set: the compose stack sets it (docker-compose.yml).")
        check_pg_url(name, env[name])
    import psycopg

    standin = _flag(env, "CRM_SHOP_STANDIN", default=False)
    done = []
    name = "WAREHOUSE_URL"
    try:
        init_warehouse(env[name])
        done.append(f"warehouse schema applied: {redact(env[name])}")
        if standin:
            name = "SHOP_DB_URL"
            created = init_shop_standin(env[name])
            state = "tables created" if created else "not empty, left as it is"
            done.append(f"stand-in shop database {state}: {redact(env[name])}")
    except psycopg.OperationalError as exc:
        raise CrmError(f"cannot use {name}={redact(env[name])}: {exc}".strip()) from None
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m include.deploy",
        description="One-time set-up of the production compose stack (run by airflow-init).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "init",
        help="check the secrets, apply the warehouse schema, create the stand-in shop tables",
    )
    parser.parse_args(argv)
    try:
        for line in init(os.environ):
            print(f"init: {line}", flush=True)
    except CrmError as exc:
        print(f"crm: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
