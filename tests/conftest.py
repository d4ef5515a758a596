"""Shared fixtures. Every test talks to a real PostgreSQL server that the test
session starts itself (the project's embedded warehouse, in a temporary
CRM_HOME, as an unprivileged user when run as root)."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def _databases(test_server) -> Iterator[Callable[[str], str]]:
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
def make_database(test_server) -> Iterator[Callable[[str], str]]:
    """Create new, empty databases (``make_database("t_shop")`` returns its URL);
    every one is dropped after the test."""
    with _databases(test_server) as make:
        yield make


@pytest.fixture(scope="module")
def module_make_database(test_server) -> Iterator[Callable[[str], str]]:
    """``make_database`` for a module's fixtures: dropped after the module."""
    with _databases(test_server) as make:
        yield make


@pytest.fixture
def fresh_db_url(make_database) -> str:
    """A `postgresql://user:password@127.0.0.1:port/db` URL of a new, empty database."""
    return make_database()


class Received(list):
    """What a local receiver got; ``url`` is where to send it."""

    url: str


@contextmanager
def smtp_receiver() -> Iterator[Received]:
    """A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps every envelope it receives.

    It accepts a login as ``crm`` / ``s@cret`` without TLS (in the URL: ``s%40cret``)."""
    import socket

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    received = Received()

    class Keep:
        async def handle_DATA(self, server, session, envelope):
            envelope.login = session.auth_data.login if session.authenticated else None
            received.append(envelope)
            return "250 kept"

    def password(server, session, envelope, mechanism, auth_data):
        ok = (auth_data.login, auth_data.password) == (b"crm", b"s@cret")
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(
        Keep(), hostname="127.0.0.1", port=port, authenticator=password, auth_require_tls=False
    )
    controller.start()
    received.url = f"smtp://127.0.0.1:{port}"
    try:
        yield received
    finally:
        controller.stop()


@contextmanager
def webhook_receiver() -> Iterator[Received]:
    """A real HTTP server on 127.0.0.1 that keeps every POST body; it answers
    ``received.status`` (200 unless a test sets another)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received = Received()
    received.status = 200

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(received.status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    received.url = f"http://127.0.0.1:{server.server_port}/alerts"
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def smtp_server() -> Iterator[Received]:
    with smtp_receiver() as received:
        yield received


@pytest.fixture
def webhook_server() -> Iterator[Received]:
    with webhook_receiver() as received:
        yield received


@pytest.fixture(scope="module")
def module_webhook_server() -> Iterator[Received]:
    """One webhook receiver for a whole module (an Airflow stack started once posts to it)."""
    with webhook_receiver() as received:
        yield received


def pytest_collection_modifyitems(config, items):
    """The end-to-end module first: it is the longest, so with `-n 2 --dist loadfile`
    one worker runs it while the other runs everything else."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("e2e") else 1)
