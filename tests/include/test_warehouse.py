"""The embedded warehouse's lifecycle, through the `crm` command as a user runs it."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

CRM = [sys.executable, "-m", "include.cli"]


def crm(home: Path, *args: str, check: bool = True, **env) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [*CRM, *args],
        env={**os.environ, "CRM_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"crm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def home(tmp_path_factory):
    path = tmp_path_factory.mktemp("wh")
    yield path
    crm(path, "warehouse", "stop", check=False)


def test_lifecycle_start_status_url_stop(home):
    assert crm(home, "warehouse", "status", check=False).returncode == 3
    assert "not initialised" in crm(home, "warehouse", "status", check=False).stdout

    assert "started" in crm(home, "warehouse", "start").stdout
    assert "already running" in crm(home, "warehouse", "start").stdout  # start is a no-op
    status = crm(home, "warehouse", "status")
    assert "running" in status.stdout and "127.0.0.1" in status.stdout

    url = crm(home, "warehouse", "url", "--with-password").stdout.strip()
    with psycopg.connect(url) as conn:
        names = {r[0] for r in conn.execute("select datname from pg_database")}
        assert {"warehouse", "shop", "airflow"} <= names
        assert conn.execute("select count(*) from ops.load_ledger").fetchone() == (0,)
        # Bound to loopback only, and a password is required on TCP.
        assert conn.execute("show listen_addresses").fetchone() == ("127.0.0.1",)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url.replace(url.split(":")[2].split("@")[0], "wrong")).close()

    psql = crm(home, "warehouse", "psql", "-At", "-c", "select current_database()")
    assert psql.stdout.strip() == "warehouse"

    # The password is never printed unless asked for, nor on psql's command line.
    password = urlsplit(url).password
    assert password not in crm(home, "warehouse", "url").stdout
    psql_cmdline = crm(home, "warehouse", "psql", "-c", r"\! tr '\0' ' ' < /proc/$PPID/cmdline")
    assert "psql" in psql_cmdline.stdout and "127.0.0.1" in psql_cmdline.stdout
    assert password not in psql_cmdline.stdout

    # The data folder is its owner's: others may at most traverse it to reach the server
    # (when root runs it as crmpg), never list or read what is inside.
    assert stat.S_IMODE(home.stat().st_mode) & 0o066 == 0
    for folder in [p for p in home.iterdir() if p.is_dir()]:
        assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0, folder

    assert crm(home, "warehouse", "stop").stdout.strip() == "stopped"
    assert "stopped" in crm(home, "warehouse", "status", check=False).stdout
    assert "not running" in crm(home, "warehouse", "stop").stdout  # stop when stopped is fine

    # Data survives a restart.
    crm(home, "warehouse", "start")
    with psycopg.connect(crm(home, "warehouse", "url", "--with-password").stdout.strip()) as conn:
        assert conn.execute("select to_regclass('raw.pos_lines')").fetchone()[0] == "raw.pos_lines"


def test_port_taken_moves_to_a_free_port(home):
    crm(home, "warehouse", "start")
    old_url = crm(home, "warehouse", "url", "--with-password").stdout.strip()
    port = int(old_url.rsplit(":", 1)[1].split("/")[0])
    crm(home, "warehouse", "stop")
    with socket.socket() as squatter:
        # The stopped server's connections may sit in TIME_WAIT on that port.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        crm(home, "warehouse", "start")
        new_url = crm(home, "warehouse", "url", "--with-password").stdout.strip()
        assert new_url != old_url
        with psycopg.connect(new_url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)


def test_explicit_port_taken_is_one_clear_sentence(home):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = crm(home, "warehouse", "start", check=False, CRM_WAREHOUSE_PORT=str(port))
    assert result.returncode == 2
    assert f"CRM_WAREHOUSE_PORT={port} is already taken" in result.stderr
    assert "Traceback" not in result.stderr


def test_crash_leaves_stale_pid_that_start_recovers(home):
    crm(home, "warehouse", "start")
    pid = int((home / "pg" / "data" / "postmaster.pid").read_text().splitlines()[0])
    os.kill(pid, 9)  # the server dies without cleaning up
    subprocess.run(["sleep", "0.5"])
    assert "stale postmaster.pid" in crm(home, "warehouse", "status", check=False).stdout
    crm(home, "warehouse", "start")
    with psycopg.connect(crm(home, "warehouse", "url", "--with-password").stdout.strip()) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_url_before_start_and_bad_settings_are_explained(home):
    result = crm(home, "warehouse", "url", check=False)
    assert result.returncode == 2
    assert "crm warehouse start" in result.stderr and "Traceback" not in result.stderr

    result = crm(home, "env", check=False, WAREHOUSE_URL="mysql://x")
    assert result.returncode == 2
    assert "WAREHOUSE_URL must look like postgresql://" in result.stderr


def test_every_subcommand_has_help(home):
    for args in [
        [],
        ["warehouse"],
        ["warehouse", "start"],
        ["simulate"],
        ["run"],
        ["demo"],
        ["env"],
    ]:
        result = crm(home, *args, "--help")
        assert "usage: crm" in result.stdout, args
