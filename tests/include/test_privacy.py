"""The privacy policy (contract/privacy.yml): complete for what the project builds, and
enforced on the warehouse by the marts gate."""

from __future__ import annotations

import json
import re
from datetime import date

import psycopg
import pytest
import yaml

from expectations.gate import GateFailed, run_gate
from include import access, contract
from include.dbt_build import MANIFEST
from include.privacy import POLICY_PATH, PolicyError, parse, policy
from include.retention import purge
from include.warehouse import SCHEMA_SQL, apply_schema


def manifest_columns() -> set[tuple[str, str]]:
    nodes = json.loads(MANIFEST.read_text())["nodes"].values()
    return {
        (f"{node['schema']}.{node.get('alias') or node['name']}", column)
        for node in nodes
        if node["resource_type"] in ("model", "seed", "snapshot")
        for column in node["columns"]
    }


def contract_columns() -> set[tuple[str, str]]:
    tables = [*contract.sources().values(), *contract.shop_tables().values()]
    return {(t.raw_table, name) for t in tables for name, _, _ in t.raw_columns()}


def test_every_personal_looking_column_of_the_project_is_classified():
    """Every source field and every documented dbt column whose name looks personal."""
    assert policy().unclassified(contract_columns() | manifest_columns()) == []


def test_a_new_personal_column_without_a_policy_entry_is_found_by_name():
    rules = policy()
    found = rules.unclassified(
        {
            ("marts.rpt_new_list", "contact_email"),
            ("marts.rpt_new_list", "customer_phone"),
            ("marts.rpt_new_list", "segment_name"),  # not personal by name
            ("raw.loyalty_members", "email"),  # classified
        }
    )
    assert found == [
        ("marts.rpt_new_list", "contact_email"),
        ("marts.rpt_new_list", "customer_phone"),
    ]


def migration_tables() -> set[str]:
    """The relations include/sql/*.sql creates."""
    made = re.compile(r"create (?:table|view|or replace view) (?:if not exists )?(\w+\.\w+)", re.I)
    return {m for f in SCHEMA_SQL.glob("*.sql") for m in made.findall(f.read_text())}


def test_the_classified_datasets_exist_so_the_policy_does_not_rot():
    built = (
        {relation for relation, _ in manifest_columns()}
        | {relation for relation, _ in contract_columns()}
        | migration_tables()
    )
    assert sorted(set(policy().datasets) - built) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["datasets"]["raw.loyalty_members"].pop("retention"), "needs a retention"),
        (
            lambda d: d["datasets"]["raw.loyalty_members"].update(departments=["sales"]),
            "unknown department",
        ),
        (
            lambda d: d["datasets"]["raw.loyalty_members"]["columns"]["email"].update(
                masking="blur"
            ),
            "masking must be one of",
        ),
        (
            lambda d: d["datasets"]["raw.web_events"]["retention"].update(action="archive"),
            "retention action must be one of",
        ),
        (lambda d: d["files"]["logs"].update(where="../etc"), "a folder inside CRM_HOME"),
        (lambda d: d["files"]["models"].update(days="a year"), r"files\.models: needs"),
    ],
    ids=[
        "no-retention",
        "unknown-department",
        "unknown-masking",
        "unknown-action",
        "files-outside-home",
        "files-without-days",
    ],
)
def test_a_malformed_policy_is_refused_with_the_dataset_named(change, message):
    document = yaml.safe_load(POLICY_PATH.read_text())
    change(document)
    with pytest.raises(PolicyError, match=message):
        parse(document)


def test_the_marts_gate_stops_on_an_unclassified_personal_column(fresh_db_url, tmp_path):
    apply_schema(fresh_db_url)
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("create schema if not exists marts")
        conn.execute("create table marts.rpt_new_list (customer_key text, contact_email text)")
    access.apply(fresh_db_url)  # as the nightly build does: only the classification fails
    purge(fresh_db_url, date.today())
    with pytest.raises(GateFailed) as failed:
        run_gate("marts", warehouse_url=fresh_db_url, gx_dir=tmp_path / "gx", business_date=None)
    privacy_failures = [
        f for f in failed.value.result.critical_failures if f.startswith("ops.warehouse_columns")
    ]
    assert privacy_failures == [
        "ops.warehouse_columns: unexpected_rows_expectation failed (observed 1): Every"
        " personal-looking column of the warehouse is classified in contract/privacy.yml"
        " (sensitivity, departments, masking, retention)"
    ]
