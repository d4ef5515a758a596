"""Shared fixtures. Every test talks to a real PostgreSQL server that the test
session starts itself (the project's embedded warehouse, in a temporary
CRM_HOME, as an unprivileged user when run as root)."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

# Before anything imports Airflow: a throw-away AIRFLOW_HOME, no telemetry.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="crm-test-airflow-")
os.environ.setdefault("AIRFLOW_HOME", _AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
for _key, _value in {
    "DO_NOT_TRACK": "1",
    "SCARF_ANALYTICS": "false",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    "GX_ANALYTICS_ENABLED": "False",
}.items():
    os.environ[_key] = _value

import psycopg  # noqa: E402
import pytest  # noqa: E402

from include.warehouse import EmbeddedWarehouse  # noqa: E402


@pytest.fixture(scope="session")
def test_server(tmp_path_factory) -> Iterator[EmbeddedWarehouse]:
    """One embedded PostgreSQL for the whole test session."""
    home = Path(tempfile.mkdtemp(prefix="crm-test-pg-"))
    server = EmbeddedWarehouse(home)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def make_database(test_server) -> Iterator[Callable[[str], str]]:
    """Create new, empty databases (``make_database("t_shop")`` returns its URL);
    every one is dropped after the test."""
    admin = test_server.url("postgres")
    made: list[str] = []

    def make(prefix: str = "t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'create database "{name}"')
        made.append(name)
        return test_server.url(name)

    yield make
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in made:
            conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def fresh_db_url(make_database) -> str:
    """A `postgresql://user:password@127.0.0.1:port/db` URL of a new, empty database."""
    return make_database()


def pytest_collection_modifyitems(config, items):
    """The end-to-end module first: it is the longest, so with `-n 2 --dist loadfile`
    one worker runs it while the other runs everything else."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("e2e") else 1)
