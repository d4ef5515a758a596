"""The dbt project documents itself: every relation and column described in the
database (persist_docs), `dbt docs generate` works, exposures resolve, and source
freshness runs. Built once on the hand-made raw sample of test_dbt_build."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest
from test_dbt_build import FIXTURE_SQL, apply_sql, run_dbt
from include.warehouse import apply_schema

DOCUMENTED_SCHEMAS = ("staging", "intermediate", "marts", "pii", "snapshots")


@pytest.fixture(scope="module")
def built(module_make_database, tmp_path_factory):
    url = module_make_database("t_docs")
    work = tmp_path_factory.mktemp("dbt_docs")
    apply_schema(url)
    apply_sql(url, FIXTURE_SQL)
    run_dbt(["build", "--vars", '{"business_date": "2026-11-20"}'], url, work)
    return url, work


def test_every_relation_and_column_is_described_in_the_database(built):
    """BI users see the dbt descriptions in their SQL client (comments on relations and columns)."""
    url, _ = built
    with psycopg.connect(url) as conn:
        relations = conn.execute(
            """
            select c.oid, n.nspname || '.' || c.relname, obj_description(c.oid, 'pg_class')
            from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = any(%s) and c.relkind in ('r', 'v', 'm', 'p')
            """,
            (list(DOCUMENTED_SCHEMAS),),
        ).fetchall()
        assert len(relations) > 40
        undescribed = sorted(name for _, name, comment in relations if not (comment or "").strip())
        assert not undescribed, f"relations without a description: {undescribed}"
        columns = conn.execute(
            """
            select n.nspname || '.' || c.relname || '.' || a.attname
            from pg_attribute a
            join pg_class c on c.oid = a.attrelid
            join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = any(%s) and c.relkind in ('r', 'v', 'm', 'p')
              and a.attnum > 0 and not a.attisdropped
              and coalesce(col_description(c.oid, a.attnum), '') = ''
              -- dbt's own snapshot bookkeeping columns
              and a.attname not like 'dbt\\_%%'
            order by 1
            """,
            (list(DOCUMENTED_SCHEMAS),),
        ).fetchall()
        assert not columns, f"{len(columns)} columns without a description: {columns[:40]}"


def test_docs_generate_catalogs_every_model_and_exposures_resolve(built):
    url, work = built
    run_dbt(["docs", "generate", "--vars", '{"business_date": "2026-11-20"}'], url, work)
    target = work / "target"
    catalog = json.loads((target / "catalog.json").read_text())
    manifest = json.loads((target / "manifest.json").read_text())
    models = {
        uid
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] == "model" and node["config"]["materialized"] != "ephemeral"
    }
    missing = sorted(models - set(catalog["nodes"]))
    assert not missing, f"models missing from the docs catalog: {missing}"
    assert Path(target / "index.html").stat().st_size > 0
    exposures = manifest["exposures"]
    assert {e["name"] for e in exposures.values()} >= {
        "marketing_crm_dashboard",
        "customer_service_dashboard",
        "management_daily_report",
    }
    for exposure in exposures.values():
        assert exposure["depends_on"]["nodes"], f"{exposure['name']} depends on nothing"


def test_source_freshness_flags_a_stale_source(built):
    """`dbt source freshness` runs against the warehouse; the sample's data is from
    2026-11-20 and the shop source warns after 36 hours, so it is reported stale."""
    url, work = built
    output = run_dbt(["source", "freshness"], url, work)
    sources = json.loads((work / "target" / "sources.json").read_text())
    status = {r["unique_id"].split(".", 2)[2]: r["status"] for r in sources["results"]}
    assert status, output[-3000:]
    assert status.get("shop.orders") in ("warn", "error"), status
