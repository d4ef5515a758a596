#!/bin/bash
# One database and one login role of the same name per component, each role
# owning its own database and unable to connect to the others':
#   warehouse  the CRM warehouse (dbt, loaders)          WAREHOUSE_DB_PASSWORD
#   airflow    Airflow's metadata and Celery results     AIRFLOW_DB_PASSWORD
#   shop       stand-in for the shop's OLTP database     SHOP_DB_PASSWORD
#              (unused once SHOP_DB_URL points at the real shop)
#
# The postgres image runs /docker-entrypoint-initdb.d/* once, when the data
# volume is empty. To change a password later, use ALTER ROLE (or remove the
# postgres-data volume, which deletes every database).
# Passwords are passed as psql variables, never spliced into SQL text.
set -euo pipefail

create_database() {
    local name="$1" password="$2"
    if [[ -z "$password" ]]; then
        echo "postgres-init: the password for database '$name' is empty; set it in .env" >&2
        exit 1
    fi
    psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
        --set=name="$name" --set=password="$password" <<'SQL'
select format('create role %I login password %L', :'name', :'password')
 where not exists (select from pg_roles where rolname = :'name') \gexec
select format('create database %I owner %I', :'name', :'name')
 where not exists (select from pg_database where datname = :'name') \gexec
select format('revoke all on database %I from public', :'name') \gexec
SQL
    echo "postgres-init: database and role '$name' ready"
}

create_database warehouse "${WAREHOUSE_DB_PASSWORD:-}"
create_database airflow "${AIRFLOW_DB_PASSWORD:-}"
create_database shop "${SHOP_DB_PASSWORD:-}"
