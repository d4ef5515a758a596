"""The source contract (contract/sources.yml) drives the raw tables, the loader, dbt's sources
and docs/sources.md; the warehouse's schema moves forward by recorded migrations."""

from __future__ import annotations

import shutil
from datetime import date

import psycopg
import pytest
import yaml

from include import cli, contract, loaders, warehouse
from include.landing import LocalLanding
from include.warehouse import SchemaError, apply_schema


@pytest.fixture
def contract_copy(tmp_path, monkeypatch):
    """A copy of the contract the test may edit; the module caches are reset around it."""
    path = tmp_path / "sources.yml"
    shutil.copy(contract.CONTRACT_FILE, path)
    monkeypatch.setattr(contract, "CONTRACT_FILE", path)
    _clear()
    yield path
    _clear()


def _clear() -> None:
    for cached in (contract._document, contract.sources, contract.shop_tables):
        cached.cache_clear()


def _edit(path, change) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    _clear()


def test_the_generated_files_agree_with_the_contract(capsys):
    """dbt's source YAML and docs/sources.md are what `crm contract write` makes of the
    committed contract: editing the contract without regenerating them fails here."""
    stale = [
        str(path.relative_to(contract.PROJECT))
        for path, text in contract.generated_files().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    assert not stale, f"run 'crm contract write': {stale}"
    docs = contract.DOCS_FILE.read_text()
    for source in contract.sources().values():
        assert f"`{source.raw_table}`" in docs
        for f in source.fields:
            assert f"| {f.name} |" in docs or f"(column {f.name})" in docs, f.name


def test_the_loader_reads_each_source_as_the_contract_states_it():
    assert set(loaders.FIELD_TYPES) == set(contract.TYPES), "one parser per contract type"
    for name, spec in contract.sources().items():
        source = loaders.SOURCES[name]
        assert source.table == spec.raw_table and source.fmt == spec.format
        assert [c.name for c in source.columns] == [f.name for f in spec.fields]
        assert [c.field for c in source.columns] == [f.path for f in spec.fields]
        assert [c.required for c in source.columns] == [f.required for f in spec.fields]
        assert [c.parse for c in source.columns] == [
            loaders.FIELD_TYPES[f.type] for f in spec.fields
        ]


def test_the_shop_extract_reads_the_contract_columns_into_raw_tables_keyed_as_stated(
    fresh_db_url,
):
    from include.extract_shop import TABLES

    shop = contract.shop_tables()
    assert [t.name for t in TABLES] == list(shop)
    for table in TABLES:
        assert table.columns.split(", ") == [c.name for c in shop[table.name].columns]
    apply_schema(fresh_db_url)
    with psycopg.connect(fresh_db_url) as conn:
        for spec in shop.values():
            key = conn.execute(
                "select array_agg(a.attname order by k.n) from pg_index i"
                " cross join unnest(i.indkey) with ordinality k(attnum, n)"
                " join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum"
                " where i.indrelid = %s::regclass and i.indisprimary",
                (spec.raw_table,),
            ).fetchone()[0]
            assert tuple(key) == spec.raw_key, spec.name


def test_a_field_added_to_the_contract_reaches_an_existing_warehouse_and_loads(
    fresh_db_url, contract_copy, tmp_path, monkeypatch
):
    apply_schema(fresh_db_url)  # a warehouse made before the change
    _edit(
        contract_copy,
        lambda doc: doc["sources"]["pos"]["fields"].append(
            {"name": "gift_wrap", "type": "yes_no", "description": "Wrapped as a gift."}
        ),
    )
    assert apply_schema(fresh_db_url) == [], "no migration file ran a second time"
    with psycopg.connect(fresh_db_url) as conn:
        assert contract.raw_table_drift(conn) == []
        (kind,) = conn.execute(
            "select format_type(atttypid, atttypmod) from pg_attribute"
            " where attrelid = 'raw.pos_lines'::regclass and attname = 'gift_wrap'"
        ).fetchone()
    assert kind == "boolean"

    source = loaders._from_contract(contract.sources()["pos"])
    monkeypatch.setitem(loaders.SOURCES, "pos", source)
    header = ",".join(c.field for c in source.columns)
    rows = [
        "R1,TST01,2026-11-20 10:00:00,SALE,1,SKU1,2,10.50,0,cash,,S1,Y",
        "R2,TST01,2026-11-20 10:05:00,SALE,1,SKU1,1,10.50,0,cash,,S1,maybe",
    ]
    path = tmp_path / "landing/pos/2026-11-20/TST01_1.csv"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    report = loaders.load_source(
        "pos",
        warehouse_url=fresh_db_url,
        landing=LocalLanding(tmp_path / "landing"),
        business_date=date(2026, 11, 20),
    )
    assert len(report.loaded) == 1
    with psycopg.connect(fresh_db_url) as conn:
        assert conn.execute("select receipt_no, gift_wrap from raw.pos_lines").fetchall() == [
            ("R1", True)
        ]
        assert conn.execute("select field from quarantine.rejected_rows").fetchall() == [
            ("gift_wrap",)
        ]


def test_migrations_run_once_and_an_applied_one_may_not_change(fresh_db_url, tmp_path, monkeypatch):
    migrations = tmp_path / "sql"
    shutil.copytree(warehouse.SCHEMA_SQL, migrations)
    monkeypatch.setattr(warehouse, "SCHEMA_SQL", migrations)
    first = apply_schema(fresh_db_url)
    assert first == sorted(p.name for p in migrations.glob("*.sql"))
    assert apply_schema(fresh_db_url) == []

    (migrations / "900_note.sql").write_text(
        "create table ops.migration_probe (n int); insert into ops.migration_probe values (1);"
    )
    assert apply_schema(fresh_db_url) == ["900_note.sql"]
    assert apply_schema(fresh_db_url) == [], "a data migration is not repeated"
    with psycopg.connect(fresh_db_url) as conn:
        assert conn.execute("select count(*) from ops.migration_probe").fetchone() == (1,)

    edited = migrations / first[0]
    edited.write_text(edited.read_text() + "\n-- edited later\n")
    with pytest.raises(SchemaError, match=f"migration {first[0]} changed after it was applied"):
        apply_schema(fresh_db_url)


def test_a_raw_column_typed_unlike_the_contract_is_refused(fresh_db_url, capsys, monkeypatch):
    apply_schema(fresh_db_url)
    with psycopg.connect(fresh_db_url) as conn:
        conn.execute("alter table raw.privacy_requests alter column received_at type text")
    with pytest.raises(SchemaError, match=r"raw.privacy_requests.received_at is text"):
        apply_schema(fresh_db_url)
    monkeypatch.setenv("WAREHOUSE_URL", fresh_db_url)
    monkeypatch.setenv("SHOP_DB_URL", fresh_db_url)
    assert cli.main(["contract", "check"]) == 1
    assert "raw.privacy_requests.received_at is text" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["sources"]["pos"]["fields"][0].update(type="string"), "type 'string'"),
        (lambda d: d["sources"]["web"].update(extra_rows=True), "unknown keys extra_rows"),
        (
            lambda d: d["sources"]["pos"]["name_columns"][1].update(group="till"),
            "no group 'till'",
        ),
    ],
)
def test_a_contract_that_does_not_say_what_it_must_is_refused(contract_copy, change, message):
    _edit(contract_copy, change)
    with pytest.raises(contract.ContractError, match=message):
        contract.sources()


def test_the_pipeline_knows_the_contract_sources():
    """include.config.SOURCES (what CRM_SOURCES may declare) = the shop + the contract's."""
    from include.config import SOURCES

    assert set(SOURCES) == {"shop", *contract.sources()}
