"""The embedded warehouse: a real PostgreSQL server the project runs itself.

Binaries come from the ``pgserver`` wheel (PostgreSQL 16) or, failing that,
from the system's PostgreSQL. The server listens on 127.0.0.1 only, at a free
port remembered in ``<CRM_HOME>/pg/state.json`` together with a generated
password (password auth on TCP: no role connects without one; trust
auth would let any local user in). PostgreSQL refuses to run as root, so when invoked as root
(CI does) the server runs as the unprivileged OS user ``crmpg``, created on
first use.

Databases: ``warehouse``, ``shop`` (the simulated online shop) and
``airflow`` (Airflow's metadata).
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from include import roles
from include.config import ConfigError, CrmError

DATABASES = ("warehouse", "shop", "airflow")
SUPERUSER = "crm"
OS_USER = "crmpg"
SCHEMA_SQL = Path(__file__).parent / "sql"


def find_bin_dir() -> Path:
    """Where initdb, pg_ctl and psql are: the pgserver wheel first, then the system."""
    # find_spec, not import: importing pgserver has side effects we do not want.
    spec = importlib.util.find_spec("pgserver")
    if spec and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if (candidate / "pg_ctl").exists():
            return candidate
    for root in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (root / "pg_ctl").exists():
            return root
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise CrmError(
        "No PostgreSQL binaries found: run 'make setup' (installs the pgserver wheel) "
        "or set WAREHOUSE_URL to an existing server."
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _is_live_postgres(pid: int) -> bool:
    """True if ``pid`` is a running (not zombie) postgres process, not a reused pid."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    state = stat_line.rsplit(")", 1)[1].split()[0]
    return state not in {"Z", "X"} and b"postgres" in cmdline


@dataclass
class Status:
    initialised: bool
    running: bool
    pid: int | None
    port: int | None
    data_dir: Path
    message: str


class EmbeddedWarehouse:
    def __init__(self, home: Path):
        self.home = home
        self.root = home / "pg"
        self.data_dir = self.root / "data"
        self.log_file = self.root / "server.log"
        self.state_file = self.root / "state.json"

    # -- state -------------------------------------------------------------
    def state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}

    def _save_state(self, **changes) -> None:
        state = self.state() | changes
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.chmod(0o600)
        os.replace(tmp, self.state_file)

    def url(self, database: str = "warehouse") -> str:
        state = self.state()
        if not state.get("port"):
            raise ConfigError(
                f"The embedded warehouse has not been started yet ({self.root}): "
                "run 'crm warehouse start', or set WAREHOUSE_URL and SHOP_DB_URL."
            )
        return f"postgresql://{SUPERUSER}:{state['password']}@127.0.0.1:{state['port']}/{database}"

    def pipeline_url(self, database: str = "warehouse") -> str:
        """The unprivileged login of the pipeline's steps (include/roles.py); the admin's
        URL until ``ensure_databases`` has created it."""
        state = self.state()
        if not state.get("pipeline_password"):
            return self.url(database)
        return (
            f"postgresql://{roles.LOGIN}:{state['pipeline_password']}"
            f"@127.0.0.1:{state['port']}/{database}"
        )

    def airflow_url(self) -> str:
        """Airflow's own login to its metadata database (``AIRFLOW_LOGIN``, owner of
        ``airflow`` and of nothing else); the admin's URL until ``ensure_databases``
        has created it."""
        state = self.state()
        if not state.get("airflow_password"):
            return self.url("airflow")
        return (
            f"postgresql://{AIRFLOW_LOGIN}:{state['airflow_password']}"
            f"@127.0.0.1:{state['port']}/airflow"
        )

    # -- process control -----------------------------------------------------
    def _os_user(self) -> str | None:
        """The OS user to run the server as: none unless we are root."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    OS_USER,
                ],
                check=True,
                capture_output=True,
            )
        return OS_USER

    def _run(self, args: list[str], check: bool = True, timeout: float = 120):
        user = self._os_user()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        # Drop root's group too: a folder's group bits would otherwise apply.
        drop = (
            {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []} if user else {}
        )
        return subprocess.run(
            args,
            **drop,
            env=env,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
            cwd=self.root,
        )

    def _prepare_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        user = self._os_user()
        secure_home(self.home, server_user=user is not None)
        if user is None:
            return
        entry = pwd.getpwnam(user)
        # The server user must be able to reach its folder (traverse, not list, the
        # folders above it) and the binaries (read them).
        bin_dir = find_bin_dir()
        for path, bits in [
            (self.root.parent, stat.S_IXOTH),
            (bin_dir.parent, stat.S_IXOTH | stat.S_IROTH),
        ]:
            for parent in [path, *path.parents]:
                mode = parent.stat().st_mode
                if mode & bits != bits:
                    parent.chmod(mode | bits)
        os.chown(self.root, entry.pw_uid, entry.pw_gid)
        for sub in self.root.iterdir():
            if sub.name != "state.json":
                shutil.chown(sub, entry.pw_uid, entry.pw_gid)

    def _pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        return pid if _is_live_postgres(pid) else None

    def status(self) -> Status:
        initialised = (self.data_dir / "PG_VERSION").exists()
        pid = self._pid()
        port = self.state().get("port")
        if not initialised:
            msg = f"not initialised: no data folder at {self.data_dir}; 'crm warehouse start' creates it"
            return Status(False, False, None, port, self.data_dir, msg)
        if pid is None:
            stale = (self.data_dir / "postmaster.pid").exists()
            msg = f"stopped (data in {self.data_dir})" + (
                "; a stale postmaster.pid from a crash is left and will be cleared on start"
                if stale
                else ""
            )
            return Status(True, False, None, port, self.data_dir, msg)
        if port and not port_in_use(port):
            msg = f"half-started: process {pid} exists but port {port} does not answer; see {self.log_file}"
            return Status(True, False, pid, port, self.data_dir, msg)
        msg = f"running: pid {pid}, 127.0.0.1:{port}, data in {self.data_dir}"
        return Status(True, True, pid, port, self.data_dir, msg)

    def start(self) -> str:
        """Start the server (initialising it first if needed); a no-op when running."""
        self._prepare_dirs()
        current = self.status()
        if current.running:
            self.ensure_databases()
            return f"already {current.message}"
        if current.pid is not None:
            # Half-started: stop it cleanly before starting again.
            self._run(
                [str(find_bin_dir() / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast"],
                check=False,
            )
        if not current.initialised:
            self._initdb()
        elif current.pid is None:
            # A crash leaves postmaster.pid behind; its pid may now be a zombie or
            # another program, which would make PostgreSQL refuse to start.
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        port = self.state().get("port")
        if os.environ.get("CRM_WAREHOUSE_PORT"):
            port = int(os.environ["CRM_WAREHOUSE_PORT"])
            if port_in_use(port):
                raise ConfigError(
                    f"CRM_WAREHOUSE_PORT={port} is already taken by another program: "
                    "choose another port or unset it to let the warehouse pick a free one."
                )
        elif not port or port_in_use(port):
            port = free_port()
        self._save_state(port=port)
        # Drop the previous log so an error message shows this attempt only.
        self.log_file.unlink(missing_ok=True)
        result = self._run(
            [
                str(find_bin_dir() / "pg_ctl"),
                "start",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''",
            ],
            check=False,
        )
        if result.returncode != 0:
            tail = self.log_file.read_text()[-1500:] if self.log_file.exists() else result.stderr
            raise CrmError(
                f"PostgreSQL did not start (data {self.data_dir}). Server log says:\n{tail}"
            )
        self.ensure_databases()
        return f"started: 127.0.0.1:{port}, data in {self.data_dir}"

    def _initdb(self) -> None:
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise CrmError(
                f"{self.data_dir} exists but holds no PostgreSQL cluster (an interrupted init?): "
                "remove it ('crm warehouse destroy') and start again."
            )
        password = secrets.token_urlsafe(18)
        pwfile = self.root / "pwfile"
        pwfile.write_text(password + "\n")
        user = self._os_user()
        if user:
            shutil.chown(pwfile, user)
        try:
            self._run(
                [
                    str(find_bin_dir() / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "--pwfile",
                    str(pwfile),
                    "--auth",
                    "scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale",
                    "C",
                ]
            )
        except subprocess.CalledProcessError as exc:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise CrmError(f"initdb failed: {exc.stderr.strip()}") from exc
        finally:
            pwfile.unlink(missing_ok=True)
        self._save_state(password=password, user=SUPERUSER)

    def stop(self) -> str:
        current = self.status()
        if current.pid is None:
            return f"not running ({current.message})"
        self._run(
            [str(find_bin_dir() / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w"]
        )
        return "stopped"

    def destroy(self) -> str:
        """Stop the server and delete its data: every database is lost."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        return f"deleted {self.root}"

    def ensure_databases(self) -> None:
        """Create the three databases if missing and apply the warehouse schema."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            existing = {r[0] for r in conn.execute("select datname from pg_database")}
            for name in DATABASES:
                if name not in existing:
                    conn.execute(f'create database "{name}"')
            password = self.state().get("pipeline_password") or secrets.token_urlsafe(18)
            for statement in roles.ensure_statements(roles.LOGIN, password):
                conn.execute(statement)
            airflow_password = self.state().get("airflow_password") or secrets.token_urlsafe(18)
            for statement in _airflow_login_statements(airflow_password):
                conn.execute(statement)
        self._save_state(pipeline_password=password, airflow_password=airflow_password)
        with psycopg.connect(self.url("airflow"), autocommit=True) as conn:
            # what an earlier version migrated as the admin goes to Airflow's login
            conn.execute(_AIRFLOW_OWNS_ITS_TABLES)
        with psycopg.connect(self.url("shop"), autocommit=True) as conn:
            for statement in roles.shop_statements():
                conn.execute(statement)
        apply_schema(self.url("warehouse"))


AIRFLOW_LOGIN = "crm_airflow"
"""Airflow's login on the embedded server: owns the ``airflow`` database, nothing else
(no superuser, no grant in the warehouse or the shop)."""


def _airflow_login_statements(password: str) -> list[str]:
    quoted = password.replace("'", "''")
    return [
        f"do $r$ begin if to_regrole('{AIRFLOW_LOGIN}') is null then"
        f" create role {AIRFLOW_LOGIN} login; end if;"
        " exception when duplicate_object or unique_violation then null; end $r$",
        f"alter role {AIRFLOW_LOGIN} login nosuperuser nocreatedb nocreaterole noinherit"
        f" password '{quoted}'",
        f"alter database airflow owner to {AIRFLOW_LOGIN}",
    ]


_AIRFLOW_OWNS_ITS_TABLES = f"""
do $own$ declare r record; begin
    for r in
        select ns.nspname, cls.relname, cls.relkind
        from pg_class as cls join pg_namespace as ns on ns.oid = cls.relnamespace
        where ns.nspname = 'public' and cls.relkind in ('r', 'p', 'v', 'm', 'S')
          and cls.relowner <> '{AIRFLOW_LOGIN}'::regrole
          -- a column's sequence follows its table
          and not exists (
              select 1 from pg_depend as dep
              where dep.objid = cls.oid and dep.deptype in ('a', 'i') and cls.relkind = 'S'
          )
    loop
        execute format('alter %s public.%I owner to {AIRFLOW_LOGIN}',
            case r.relkind when 'v' then 'view' when 'm' then 'materialized view'
                when 'S' then 'sequence' else 'table' end, r.relname);
    end loop;
end $own$
"""

HOME_FOLDERS = ("pg", "landing", "logs", "dbt", "gx", "airflow", "privacy", "reports")
"""The data folder's sub-folders, made owner-only before anything writes to them."""


def secure_home(home: Path, *, server_user: bool = False) -> None:
    """Make the project's data folder (``CRM_HOME``) readable by its owner only.

    It holds the landing files, the warehouse's data, logs and Data Docs: personal
    data. When root runs the server as ``crmpg``, others may traverse (not list)
    the folder so that ``crmpg`` reaches ``pg/``; every sub-folder stays owner-only.
    """
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o711 if server_user else 0o700)
    for name in HOME_FOLDERS:
        (home / name).mkdir(exist_ok=True)
    for child in home.iterdir():
        if child.is_dir() and not child.is_symlink():
            child.chmod(0o700)


class SchemaError(CrmError):
    """The warehouse's schema cannot be brought to what this code expects."""


def apply_schema(url: str) -> list[str]:
    """Bring the warehouse's own schemas and tables up to date; return the migrations run.

    ``include/sql/NNN_*.sql`` are versioned migrations: each runs once, in file order,
    and is recorded with its checksum in ``ops.schema_migrations``; an applied file
    that has since changed is refused (add a new file instead). Then the raw tables
    of the landing sources and of the shop are created, or given the columns they lack,
    from contract/sources.yml (``include.contract.raw_table_sql``), and checked against it.
    Last, the department grants of contract/privacy.yml (``include.access.apply``).
    One transaction, serialised by an advisory lock: nothing half-applied, and two
    processes starting at once do not race.
    """
    import hashlib

    import psycopg

    from include import access, contract

    ran = []
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('crm.apply_schema'))")
        for statement in roles.ensure_statements():
            conn.execute(statement)
        conn.execute(
            "create schema if not exists ops;"
            " create table if not exists ops.schema_migrations ("
            " version text primary key, checksum text not null,"
            " applied_at timestamptz not null default clock_timestamp())"
        )
        applied = dict(conn.execute("select version, checksum from ops.schema_migrations"))
        for sql_file in sorted(SCHEMA_SQL.glob("*.sql")):
            text = sql_file.read_text()
            checksum = hashlib.sha256(text.encode()).hexdigest()
            if sql_file.name in applied:
                if applied[sql_file.name] != checksum:
                    raise SchemaError(
                        f"migration {sql_file.name} changed after it was applied to this "
                        "warehouse (ops.schema_migrations): put the change in a new "
                        "include/sql/NNN_*.sql file and restore this one"
                    )
                continue
            conn.execute(text)
            conn.execute(
                "insert into ops.schema_migrations (version, checksum) values (%s, %s)",
                (sql_file.name, checksum),
            )
            ran.append(sql_file.name)
        for table in [*contract.sources().values(), *contract.shop_tables().values()]:
            conn.execute(contract.raw_table_sql(table))
        drift = contract.raw_table_drift(conn)
        if drift:
            raise SchemaError(
                "the raw tables disagree with contract/sources.yml: "
                + "; ".join(drift)
                + " (a type change needs a migration in include/sql)"
            )
        for statement in roles.grant_statements():
            conn.execute(statement)
        access.apply(conn)
    return ran
