"""The landing-zone source contract (``contract/sources.yml``), read once for everything.

The raw tables, the loader's sources, the dbt source definitions and
docs/sources.md all come from it; `crm contract write` rewrites the generated
files and ``make test`` fails while they disagree with it (the contract file's
own header says what each key means).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from include import privacy

PROJECT = Path(__file__).resolve().parents[1]
CONTRACT_FILE = PROJECT / "contract" / "sources.yml"
DBT_STAGING = PROJECT / "dbt_project" / "models" / "staging"
DOCS_FILE = PROJECT / "docs" / "sources.md"

#: The contract's field types: what a value must look like, and its raw column type
#: (the parsers and SQL checks that enforce them: include/loaders.py FIELD_TYPES).
TYPES = {
    "text": ("any UTF-8 text without NUL", "text"),
    "int": ("a whole number that fits int4", "int"),
    "bigint": ("a whole number that fits int8", "bigint"),
    "money": ("a decimal amount, rounded to cents, below 10^10", "numeric(12, 2)"),
    "date": ("YYYY-MM-DD, a real calendar date", "date"),
    "local_ts": ("YYYY-MM-DD HH:MM:SS, Hong Kong time, no offset", "timestamp"),
    "utc_ts": ("ISO 8601 with an offset (Z or +hh:mm)", "timestamptz"),
    "uuid": ("8-4-4-4-12 hex digits", "uuid"),
    "yes_no": ("Y or N", "boolean"),
}
SQL_TYPES = {name: sql for name, (_, sql) in TYPES.items()}
DATE_GROUP = r"(?P<date>\d{4}-\d{2}-\d{2})"
#: A daily source's re-export of a day: ``<date>_<seq>`` (the plain name is seq 1).
CORRECTION_GROUP = r"(?:_(?P<seq>\d+))?"

_GENERATED_HEADER = (
    "# Written by `crm contract write` from contract/sources.yml: edit that file, not this.\n"
)
_SOURCE_KEYS = {
    "description", "format", "prefix", "name_pattern", "dated_folders", "replaced_whole",
    "keep_extra", "business_date_group", "table", "dbt_table", "table_description",
    "freshness", "name_columns", "fields",
}  # fmt: skip
_FIELD_KEYS = {"name", "type", "required", "field", "description"}
_NAME_COLUMN_KEYS = {"name", "group", "type", "description"}


class ContractError(ValueError):
    """contract/sources.yml does not say what it must (the message names the place)."""


@dataclass(frozen=True)
class Field:
    name: str  # raw column
    type: str  # a key of SQL_TYPES
    required: bool
    path: str  # where the value is in the record ("customer.email"); the name if the same
    personal: bool
    description: str

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.type]


@dataclass(frozen=True)
class NameColumn:
    """A raw column whose value comes from the file name (a group of the name pattern)."""

    name: str
    group: str
    type: str
    description: str

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.type]


@dataclass(frozen=True)
class SourceContract:
    name: str
    description: str
    format: str  # csv or jsonl
    prefix: str
    name_pattern: re.Pattern
    dated_folders: bool
    replaced_whole: bool
    keep_extra: bool
    business_date_group: str | None
    table: str  # in schema raw
    dbt_table: str
    table_description: str
    freshness: dict[str, Any] | None
    name_columns: tuple[NameColumn, ...]
    fields: tuple[Field, ...]

    @property
    def raw_table(self) -> str:
        return f"raw.{self.table}"

    def raw_columns(self) -> list[tuple[str, str, str]]:
        """(name, SQL type with NOT NULL where it applies, description) in table order."""
        cols = [
            (f.name, f.sql_type + (" not null" if f.required else ""), f.description)
            for f in self.fields
        ]
        if self.keep_extra:
            cols.append(("extra", "jsonb", "Fields the contract does not know yet, as JSON."))
        cols += [(c.name, c.sql_type + " not null", c.description) for c in self.name_columns]
        cols += [(c["name"], c["sql"], c["description"]) for c in lineage()]
        return cols


@functools.cache
def _document() -> dict[str, Any]:
    doc = yaml.safe_load(CONTRACT_FILE.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or not isinstance(doc.get("sources"), dict):
        raise ContractError(f"{CONTRACT_FILE}: needs a 'sources' mapping")
    return doc


def version() -> int:
    return int(_document()["contract_version"])


def lineage() -> list[dict[str, str]]:
    return list(_document()["lineage"])


def _unknown(where: str, keys, allowed: set[str]) -> None:
    extra = sorted(set(keys) - allowed)
    if extra:
        raise ContractError(f"{CONTRACT_FILE}: {where}: unknown keys {', '.join(extra)}")


def _type(where: str, name: str) -> str:
    if name not in SQL_TYPES:
        raise ContractError(
            f"{CONTRACT_FILE}: {where}: type {name!r} is not one of {', '.join(SQL_TYPES)}"
        )
    return name


def _is_personal(relation: str, column: str) -> bool:
    """Personal data by the privacy policy (contract/privacy.yml), its one place."""
    dataset = privacy.policy().datasets.get(relation)
    return dataset is not None and column in dataset.columns and dataset.columns[column].is_personal


def _source(name: str, spec: dict[str, Any]) -> SourceContract:
    where = f"source {name}"
    _unknown(where, spec, _SOURCE_KEYS)
    fields = []
    for f in spec["fields"]:
        _unknown(f"{where} field {f.get('name')}", f, _FIELD_KEYS)
        fields.append(
            Field(
                name=f["name"],
                type=_type(f"{where} field {f['name']}", f["type"]),
                required=bool(f.get("required", False)),
                path=f.get("field", f["name"]),
                personal=_is_personal(f"raw.{spec['table']}", f["name"]),
                description=f["description"],
            )
        )
    name_columns = []
    for c in spec.get("name_columns", []):
        _unknown(f"{where} name column {c.get('name')}", c, _NAME_COLUMN_KEYS)
        name_columns.append(
            NameColumn(c["name"], c["group"], _type(f"{where} {c['name']}", c["type"]),
                       c["description"])
        )  # fmt: skip
    pattern = spec["name_pattern"].replace("{date}", DATE_GROUP)
    pattern = pattern.replace("{correction}", CORRECTION_GROUP)
    regex = re.compile(pattern)
    for c in name_columns:
        if c.group not in regex.groupindex:
            raise ContractError(f"{CONTRACT_FILE}: {where}: no group {c.group!r} in its name")
    if spec["format"] not in ("csv", "jsonl"):
        raise ContractError(f"{CONTRACT_FILE}: {where}: format must be csv or jsonl")
    return SourceContract(
        name=name,
        description=" ".join(spec["description"].split()),
        format=spec["format"],
        prefix=spec["prefix"],
        name_pattern=regex,
        dated_folders=bool(spec.get("dated_folders", False)),
        replaced_whole=bool(spec.get("replaced_whole", False)),
        keep_extra=bool(spec.get("keep_extra", False)),
        business_date_group=spec.get("business_date_group", "date"),
        table=spec["table"],
        dbt_table=spec["dbt_table"],
        table_description=spec["table_description"],
        freshness=spec.get("freshness"),
        name_columns=tuple(name_columns),
        fields=tuple(fields),
    )


@functools.cache
def sources() -> dict[str, SourceContract]:
    """Every landing source of the contract, by name, in the file's order."""
    return {name: _source(name, spec) for name, spec in _document()["sources"].items()}


_SHOP_TYPES = {"text", "int", "bigint", "numeric(12, 2)", "date", "boolean", "timestamptz"}
_SHOP_TABLE_KEYS = {
    "description", "window", "loaded_at_field", "raw_key", "entity_key", "columns"
}  # fmt: skip
_SHOP_COLUMN_KEYS = {"name", "type", "description"}


@dataclass(frozen=True)
class ShopColumn:
    name: str
    sql_type: str
    personal: bool
    description: str


@dataclass(frozen=True)
class ShopTable:
    name: str  # in the shop's schema public; raw.shop_<name>
    description: str
    window: str
    loaded_at_field: str | None
    raw_key: tuple[str, ...]
    #: The columns naming one row in the shop; empty: deletions are not tracked.
    entity_key: tuple[str, ...]
    columns: tuple[ShopColumn, ...]

    @property
    def raw_table(self) -> str:
        return f"raw.shop_{self.name}"

    def raw_columns(self) -> list[tuple[str, str, str]]:
        cols = [
            (c.name, c.sql_type + (" not null" if c.name in self.raw_key else ""), c.description)
            for c in self.columns
        ]
        description = "Load ledger id (ops.load_ledger) of the extract that landed the row."
        return [*cols, ("_load_id", "bigint not null", description)]


@functools.cache
def shop_tables() -> dict[str, ShopTable]:
    """The shop database's tables the extract reads, by name, in the file's order."""
    spec = _document().get("shop") or {"tables": {}}
    tables = {}
    for name, t in spec["tables"].items():
        where = f"shop table {name}"
        _unknown(where, t, _SHOP_TABLE_KEYS)
        columns = []
        for c in t["columns"]:
            _unknown(f"{where} column {c.get('name')}", c, _SHOP_COLUMN_KEYS)
            if c["type"] not in _SHOP_TYPES:
                raise ContractError(
                    f"{CONTRACT_FILE}: {where} column {c['name']}: type {c['type']!r} is not "
                    f"one of {', '.join(sorted(_SHOP_TYPES))}"
                )
            columns.append(
                ShopColumn(
                    c["name"],
                    c["type"],
                    _is_personal(f"raw.shop_{name}", c["name"]),
                    c["description"],
                )
            )
        names = {c.name for c in columns}
        for key in [*t["raw_key"], *t.get("entity_key", [])]:
            if key not in names:
                raise ContractError(f"{CONTRACT_FILE}: {where}: key {key} is not a column")
        tables[name] = ShopTable(
            name=name,
            description=t["description"],
            window=t["window"],
            loaded_at_field=t.get("loaded_at_field"),
            raw_key=tuple(t["raw_key"]),
            entity_key=tuple(t.get("entity_key", [])),
            columns=tuple(columns),
        )
    return tables


# --------------------------------------------------------------------------------------------
# What the contract generates
# --------------------------------------------------------------------------------------------


def raw_table_sql(table: SourceContract | ShopTable) -> str:
    """Create a raw table of the contract if missing and add every column it lacks.

    Columns are only ever added: a field dropped from the contract keeps its column
    (and its history). A column whose type differs from the contract is left for a
    migration; ``raw_table_drift`` reports it. A shop table's raw key is its primary key.
    """
    columns = table.raw_columns()
    lines = [f"    {name} {sql_type}" for name, sql_type, _ in columns]
    if isinstance(table, ShopTable):
        lines.append(f"    primary key ({', '.join(table.raw_key)})")
    body = ",\n".join(lines)
    statements = [f"create table if not exists {table.raw_table} (\n{body}\n);"]
    for name, sql_type, _ in columns:
        # A column added to an existing table cannot be NOT NULL over its old rows.
        plain = sql_type.replace(" not null", "")
        statements.append(f"alter table {table.raw_table} add column if not exists {name} {plain};")
    return "\n".join(statements)


_PG_TYPES = {
    "text": "text",
    "int": "integer",
    "bigint": "bigint",
    "numeric(12, 2)": "numeric(12,2)",
    "date": "date",
    "timestamp": "timestamp without time zone",
    "timestamptz": "timestamp with time zone",
    "uuid": "uuid",
    "boolean": "boolean",
    "jsonb": "jsonb",
}


def raw_table_drift(conn) -> list[str]:
    """Sentences for every raw column that is missing or typed unlike the contract."""
    problems = []
    for source in [*sources().values(), *shop_tables().values()]:
        rows = conn.execute(
            "select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a"
            " where a.attrelid = to_regclass(%s) and a.attnum > 0 and not a.attisdropped",
            (source.raw_table,),
        ).fetchall()
        have = dict(rows)
        for name, sql_type, _ in source.raw_columns():
            want = _PG_TYPES[sql_type.replace(" not null", "")]
            if name not in have:
                problems.append(f"{source.raw_table}.{name} is missing")
            elif have[name] != want:
                problems.append(f"{source.raw_table}.{name} is {have[name]}, the contract: {want}")
    return problems


def dbt_sources(source: SourceContract) -> str:
    """The dbt source definition of one landing source (YAML text)."""
    table: dict[str, Any] = {
        "name": source.dbt_table,
        "identifier": source.table,
        "description": source.table_description,
    }
    if source.freshness:
        table["config"] = {
            "loaded_at_field": source.freshness["loaded_at_field"],
            "freshness": {
                "warn_after": {"count": source.freshness["warn_after_hours"], "period": "hour"}
            },
        }
    table["columns"] = _dbt_columns(
        source.raw_columns(), {f.name for f in source.fields if f.personal}
    )
    doc = {
        "sources": [
            {
                "name": source.name,
                "description": source.description,
                "schema": "raw",
                "loader": f"include (crm load {source.name})",
                "tables": [table],
            }
        ]
    }
    return _GENERATED_HEADER + yaml.dump(
        doc, Dumper=_IndentedDumper, sort_keys=False, width=100, allow_unicode=True
    )


class _IndentedDumper(yaml.SafeDumper):
    """Block lists indented under their key, as the hand-written dbt YAML files are."""

    def increase_indent(self, flow: bool = False, indentless: bool = False):  # noqa: ARG002
        return super().increase_indent(flow, False)


def dbt_sources_path(source: SourceContract) -> Path:
    return DBT_STAGING / source.name / f"_{source.name}__sources.yml"


SHOP_SOURCES_PATH = DBT_STAGING / "shop" / "_shop__sources.yml"


def _dbt_columns(columns: list[tuple[str, str, str]], personal: set[str]) -> list[dict]:
    return [
        {"name": name, "description": text, "meta": {"personal_data": True}}
        if name in personal
        else {"name": name, "description": text}
        for name, _, text in columns
    ]


def dbt_shop_sources() -> str:
    """The dbt source definition of the shop's raw tables (YAML text)."""
    spec = _document()["shop"]
    tables = []
    for t in shop_tables().values():
        config: dict[str, Any] = (
            {"loaded_at_field": t.loaded_at_field} if t.loaded_at_field else {"freshness": None}
        )
        tables.append(
            {
                "name": t.name,
                "identifier": f"shop_{t.name}",
                "description": t.description,
                "config": config,
                "columns": _dbt_columns(t.raw_columns(), {c.name for c in t.columns if c.personal}),
            }
        )
    tables.append(
        {
            "name": "deletions",
            "identifier": "shop_deletions",
            "description": "Rows the shop hard-deleted, found by the extract's periodic"
            " reconciliation (include/extract_shop.py); made by the pipeline, not the shop.",
            "config": {"freshness": None},
            "columns": [
                {"name": "table_name", "description": "Shop table of the deleted row."},
                {"name": "entity_key", "description": "Its entity_key columns joined by '|'."},
                {"name": "detected_at", "description": "When the reconciliation found it gone."},
                {"name": "_load_id", "description": "Load ledger id of that reconciliation."},
            ],
        }
    )
    doc = {
        "sources": [
            {
                "name": "shop",
                "description": " ".join(spec["description"].split()),
                "schema": "raw",
                "loader": "include (crm extract shop)",
                "config": {
                    "freshness": {
                        "warn_after": {"count": spec["warn_after_hours"], "period": "hour"}
                    }
                },
                "tables": tables,
            }
        ]
    }
    return _GENERATED_HEADER + yaml.dump(
        doc, Dumper=_IndentedDumper, sort_keys=False, width=100, allow_unicode=True
    )


def sources_markdown() -> str:
    """docs/sources.md: the contract for people."""
    lines = [
        "# Landing-zone source contract",
        "",
        "Written by `crm contract write` from `contract/sources.yml` (contract version "
        f"{version()}); edit that file, not this one.",
        "",
        "Every file of the landing zone is loaded by its source's rules below, or rejected with",
        "a reason in `ops.load_ledger`. A row whose required field is empty, or whose value is",
        "not of its field's type, goes to `quarantine.rejected_rows` with its file, record",
        "number, field and reason; the rest of the file loads. Local times are Hong Kong time",
        "(UTC+8, no DST); money is HKD with 2 decimals.",
        "",
        "| type | accepted values | raw column |",
        "|---|---|---|",
        *(f"| {name} | {accepted} | {sql} |" for name, (accepted, sql) in TYPES.items()),
        "",
    ]
    for s in sources().values():
        lines += [f"## {s.name}: `{s.raw_table}`", "", s.description, ""]
        lines.append(f"- File names: `{s.name_pattern.pattern}` ({s.format})")
        if s.replaced_whole:
            lines.append("- Replaced whole: the same name carries each new version.")
        if s.keep_extra:
            lines.append("- Unknown fields are kept in the `extra` column (JSON).")
        if s.freshness:
            lines.append(
                f"- Freshness: warn when `{s.freshness['loaded_at_field']}` is older than "
                f"{s.freshness['warn_after_hours']} hours (`dbt source freshness`)."
            )
        lines += [
            "",
            "| field | type | required | personal data | meaning |",
            "|---|---|---|---|---|",
        ]
        for f in s.fields:
            name = f.name if f.path == f.name else f"{f.path} (column {f.name})"
            lines.append(
                f"| {name} | {f.type} | {'yes' if f.required else ''} | "
                f"{'yes' if f.personal else ''} | {f.description} |"
            )
        for c in s.name_columns:
            lines.append(
                f"| {c.name} (from the name: `{c.group}`) | {c.type} | yes | | {c.description} |"
            )
        lines.append("")
    if shop_tables():
        lines += [
            "## shop: the online shop's database (`raw.shop_<table>`)",
            "",
            " ".join(_document()["shop"]["description"].split()),
            "",
        ]
        for t in shop_tables().values():
            lines += [
                f"### `public.{t.name}` -> `{t.raw_table}`",
                "",
                f"{t.description} Read by `{t.window}`; raw key ({', '.join(t.raw_key)}).",
                "",
                "| column | type | personal data | meaning |",
                "|---|---|---|---|",
            ]
            lines += [
                f"| {c.name} | {c.sql_type} | {'yes' if c.personal else ''} | {c.description} |"
                for c in t.columns
            ]
            lines.append("")
    return "\n".join(lines)


def generated_files() -> dict[Path, str]:
    """Every file `crm contract write` writes, with its content."""
    files = {dbt_sources_path(s): dbt_sources(s) for s in sources().values()}
    if shop_tables():
        files[SHOP_SOURCES_PATH] = dbt_shop_sources()
    files[DOCS_FILE] = sources_markdown()
    return files


def write() -> list[Path]:
    """Write the generated files that differ from the contract; return their paths."""
    changed = []
    for path, text in generated_files().items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed
