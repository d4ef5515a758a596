# syntax=docker/dockerfile:1
# The CRM platform image: the pinned stack (requirements.lock), the project
# installed the way `make setup` installs it, and the dbt manifest the DAG
# renders from, built here so that no Airflow component runs dbt at parse time.
# Every Airflow component of docker-compose.yml runs this image:
#   docker run --rm crm-platform airflow version   # = crm airflow version
FROM python:3.11-slim

# No telemetry from any tool, ever (the same switches as the Makefile and
# include/airflow_env.py).
ENV DO_NOT_TRACK=1 \
    SCARF_ANALYTICS=false \
    AIRFLOW__CORE__ANALYTICS_ENABLED=False \
    DBT_SEND_ANONYMOUS_USAGE_STATS=False \
    GX_ANALYTICS_ENABLED=False \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# Where the project keeps its state and task logs (named volumes in
# docker-compose.yml). `crm airflow` derives AIRFLOW_HOME and the DAGs folder
# itself; they are set here to the same values for the healthchecks that call
# `celery` directly.
ENV CRM_HOME=/opt/crm/data \
    AIRFLOW_HOME=/opt/crm/data/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/crm/dags \
    AIRFLOW__LOGGING__BASE_LOG_FOLDER=/opt/crm/logs

# An unprivileged user; the code stays owned by root (read-only for it).
RUN groupadd --system --gid 10001 crm \
    && useradd --system --uid 10001 --gid crm --home-dir /home/crm --create-home crm

# The pinned dependencies first: this layer is rebuilt only when the lock changes.
RUN python -m venv /opt/venv && pip install --no-cache-dir uv==0.13.9
WORKDIR /opt/crm
COPY requirements.lock ./
RUN uv pip install --no-cache --python /opt/venv/bin/python -r requirements.lock

# The project itself (see .dockerignore for what stays out: .env, .venv, .crm, ...).
COPY . .
RUN uv pip install --no-cache --python /opt/venv/bin/python --no-deps -e .

# dbt_project/target/manifest.json, as `make setup` builds it. `dbt parse` does
# not connect to the database; profiles.yml has defaults for every CRM_PG_*
# setting, and the customer-key secret gets a dummy value for this step only
# (the real one comes from the environment at run time, never from the image).
RUN cd dbt_project \
    && CRM_CUSTOMER_KEY_SECRET=build-time-dummy \
       CRM_PG_HOST=127.0.0.1 CRM_PG_USER=build CRM_PG_PASSWORD=build CRM_PG_DATABASE=build \
       dbt parse --quiet --profiles-dir . --target-path target \
    && test -s target/manifest.json \
    && mkdir -p target logs /opt/crm/data /opt/crm/logs \
    && chown -R crm:crm /opt/crm/data /opt/crm/logs target logs

# A new named volume mounted on /opt/crm/data or /opt/crm/logs starts with
# this ownership, so the unprivileged user can write to it.
USER crm

ENTRYPOINT ["crm"]
CMD ["--help"]
