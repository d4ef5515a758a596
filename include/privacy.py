"""The privacy policy (contract/privacy.yml): read once, checked, and asked questions.

The policy is the one place that says which columns hold personal data, who may
read each dataset and how long it is kept. This module only reads it; the marts
gate (expectations/privacy.py) uses it to stop publication when the warehouse
holds a personal-looking column the policy does not classify, and the tests use
it against the dbt manifest and the source contract.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath

import yaml

from include.config import REPO_ROOT, CrmError

POLICY_PATH = REPO_ROOT / "contract" / "privacy.yml"
SENSITIVITIES = ("personal", "sensitive", "pseudonymous", "not_personal")
MASKINGS = ("none", "hash", "redact", "nullify")
ROW_KEYS = ("region", "store_code")


class PolicyError(CrmError):
    """The policy file is malformed, or the warehouse holds what it does not classify."""


@dataclass(frozen=True)
class Column:
    sensitivity: str
    masking: str
    departments: tuple[str, ...]
    note: str | None = None

    @property
    def is_personal(self) -> bool:
        return self.sensitivity in ("personal", "sensitive")


@dataclass(frozen=True)
class Retention:
    days: int
    column: str
    action: str
    #: a versioned table's key: only versions a newer one of the same key replaced expire
    versions_of: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileSet:
    """Files kept outside the warehouse and how long (include/retention.py purge_files)."""

    name: str
    where: str  # a folder of CRM_HOME, or LANDING (the landing zone)
    days: int
    holds: str


LANDING = "landing"


@dataclass(frozen=True)
class Dataset:
    name: str
    purpose: str
    departments: tuple[str, ...]
    columns: dict[str, Column]
    #: None: kept while the business needs it (no personal column); "derived": rebuilt
    #: from the datasets it reads.
    retention: Retention | str | None
    legal_hold_days: int | None
    #: row-level security: ("region" | "store_code", the column holding it), or None
    rows: tuple[str, str] | None = None
    #: a direct-marketing contact list: consented, not opted-out customers only
    marketing_list: bool = False

    def readers(self, column: str | None = None) -> tuple[str, ...]:
        """The departments that may read ``column`` of this dataset (the dataset: None)."""
        spec = self.columns.get(column) if column else None
        return spec.departments if spec else self.departments


@dataclass(frozen=True)
class Access:
    #: schema -> the departments reading a relation of it no dataset lists
    schemas: dict[str, tuple[str, ...]]
    #: the department that sees only its regions' rows, and the regions
    row_department: str
    regions: tuple[str, ...]


@dataclass(frozen=True)
class Erasure:
    """What an erasure does (the policy's ``erasure`` section; include/erasure.py)."""

    #: raw table -> ({identity_type: column}, columns to empty, or () to delete the rows)
    raw: dict[str, tuple[dict[str, str], tuple[str, ...]]]
    #: downstream columns holding an identity id (``<type>:<source id>``) or a person anchor
    identity_columns: tuple[str, ...]
    #: downstream columns holding a pseudonymous customer_key
    key_columns: tuple[str, ...]
    #: downstream tables whose rows stay with their keys emptied (de-identified facts)
    facts: tuple[str, ...]
    #: schemas the erasure reaches beyond raw
    schemas: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    departments: dict[str, str]
    name_patterns: tuple[str, ...]
    content_patterns: dict[str, str]
    datasets: dict[str, Dataset]
    access: Access
    erasure: Erasure
    #: schemas whose text columns must hold no value matching a content pattern
    content_schemas: tuple[str, ...] = ()
    #: the files kept outside the warehouse, by name (``files`` of the policy)
    files: dict[str, FileSet] = field(default_factory=dict)

    @property
    def name_regex(self) -> str:
        """One case-insensitive regular expression for a personal-looking column name."""
        return "|".join(f"({p})" for p in self.name_patterns)

    def looks_personal(self, column: str) -> bool:
        return re.search(self.name_regex, column, re.IGNORECASE) is not None

    def classified(self) -> set[tuple[str, str]]:
        """Every (dataset, column) the policy classifies, personal or not."""
        return {(d.name, c) for d in self.datasets.values() for c in d.columns}

    def unclassified(self, columns: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Of (``schema.relation``, column) pairs, those that look personal and that
        the policy does not classify, sorted."""
        known = self.classified()
        return sorted({(rel, col) for rel, col in columns if self.looks_personal(col)} - known)

    def readers(self, relation: str, column: str | None = None) -> tuple[str, ...]:
        """The departments that may read ``column`` of ``schema.relation`` (the relation:
        None): its dataset's (narrowed by the column's), else its schema's; none in an
        undeclared schema."""
        dataset = self.datasets.get(relation)
        if dataset is not None:
            return dataset.readers(column)
        return self.access.schemas.get(relation.split(".", 1)[0], ())


def _fail(where: str, what: str) -> PolicyError:
    return PolicyError(f"{POLICY_PATH.name}: {where}: {what}")


def _departments(raw, where: str, known: dict[str, str]) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise _fail(where, "departments must be a non-empty list")
    unknown = [d for d in raw if d not in known]
    if unknown:
        raise _fail(where, f"unknown department(s) {unknown}; declared: {sorted(known)}")
    return tuple(raw)


def _retention(raw, where: str, actions: list[str]) -> Retention | str | None:
    if raw is None or raw == "derived":
        return raw
    if not isinstance(raw, dict) or not {"days", "from", "action"} <= set(raw) <= {
        "days",
        "from",
        "action",
        "versions_of",
    }:
        raise _fail(where, "retention must be 'derived' or {days, from, action[, versions_of]}")
    if not isinstance(raw["days"], int) or raw["days"] < 1:
        raise _fail(where, f"retention days must be a whole number >= 1, got {raw['days']!r}")
    if raw["action"] not in actions:
        raise _fail(where, f"retention action must be one of {actions}, got {raw['action']!r}")
    return Retention(raw["days"], raw["from"], raw["action"], tuple(raw.get("versions_of") or ()))


def parse(document: dict) -> Policy:
    """A policy from its YAML document, every value checked (one sentence per mistake)."""
    if document.get("policy_version") != 1:
        raise _fail("policy_version", "must be 1")
    departments = document.get("departments") or {}
    detection = document.get("detection") or {}
    names = tuple(detection.get("names") or ())
    content = dict(detection.get("content") or {})
    if not names or not content:
        raise _fail("detection", "needs names and content patterns")
    for pattern in (*names, *content.values()):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise _fail("detection", f"{pattern!r} is not a regular expression: {exc}") from exc
    actions = list(document.get("retention_actions") or ())
    datasets: dict[str, Dataset] = {}
    for name, spec in (document.get("datasets") or {}).items():
        if name.count(".") != 1:
            raise _fail(name, "a dataset is named <schema>.<relation>")
        if not spec.get("purpose"):
            raise _fail(name, "needs a purpose")
        dataset_departments = _departments(spec.get("departments"), name, departments)
        columns = {}
        for column, col in (spec.get("columns") or {}).items():
            where = f"{name}.{column}"
            if col.get("sensitivity") not in SENSITIVITIES:
                raise _fail(where, f"sensitivity must be one of {SENSITIVITIES}")
            if col.get("masking") not in MASKINGS:
                raise _fail(where, f"masking must be one of {MASKINGS}")
            narrower = _departments(
                col.get("departments", list(dataset_departments)), where, departments
            )
            if not set(narrower) <= set(dataset_departments):
                raise _fail(where, "a column's departments must be among its dataset's")
            columns[column] = Column(col["sensitivity"], col["masking"], narrower, col.get("note"))
        retention = _retention(spec.get("retention"), name, actions)
        if retention is None and any(c.is_personal for c in columns.values()):
            raise _fail(
                name, "holds personal data, so it needs a retention ('derived' or a period)"
            )
        hold = spec.get("legal_hold")
        datasets[name] = Dataset(
            name,
            spec["purpose"],
            dataset_departments,
            columns,
            retention,
            hold.get("days") if isinstance(hold, dict) else None,
            _rows(spec.get("rows"), name),
            spec.get("marketing_list") is True,
        )
    return Policy(
        departments,
        names,
        content,
        datasets,
        _access(document, departments, datasets),
        _erasure(document.get("erasure") or {}, datasets),
        tuple(detection.get("content_checked_in") or ()),
        _files(document.get("files") or {}),
    )


def _files(raw: dict) -> dict[str, FileSet]:
    out = {}
    for name, spec in raw.items():
        where = f"files.{name}"
        spec = spec if isinstance(spec, dict) else {}
        days = spec.get("days")
        if not isinstance(days, int) or isinstance(days, bool) or days < 1 or not spec.get("holds"):
            raise _fail(where, "needs {where, days (whole days, 1 or more), holds}")
        folder = PurePosixPath(str(spec.get("where") or ""))
        if not folder.parts or folder.is_absolute() or ".." in folder.parts:
            raise _fail(where, "`where` must be a folder inside CRM_HOME, or 'landing'")
        out[name] = FileSet(name, folder.as_posix(), days, spec["holds"])
    return out


def _erasure(raw: dict, datasets: dict[str, Dataset]) -> Erasure:
    tables = {}
    for name, spec in (raw.get("raw") or {}).items():
        where = f"erasure.raw.{name}"
        dataset = datasets.get(name)
        if dataset is None:
            raise _fail(where, "is not a dataset of this policy")
        match = dict(spec.get("match") or {})
        empty = tuple(spec.get("empty") or ())
        if not match or (spec.get("action") == "delete") == bool(empty):
            raise _fail(where, "needs match: {identity_type: column} and action: delete or empty")
        if not set(empty) <= set(dataset.columns):
            raise _fail(where, "empties only columns its dataset classifies")
        tables[name] = (match, empty)
    erasure = Erasure(
        tables,
        tuple(raw.get("identity_columns") or ()),
        tuple(raw.get("key_columns") or ()),
        tuple(raw.get("facts") or ()),
        tuple(raw.get("schemas") or ()),
    )
    if not (erasure.raw and erasure.identity_columns and erasure.key_columns and erasure.schemas):
        raise _fail("erasure", "needs raw, identity_columns, key_columns and schemas")
    return erasure


def _rows(raw, where: str) -> tuple[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in ROW_KEYS:
        raise _fail(where, "rows must be one of {region: <column>}, {store_code: <column>}")
    ((key, column),) = raw.items()
    return key, column


def _access(document: dict, departments: dict[str, str], datasets: dict) -> Access:
    raw = document.get("access") or {}
    schemas = {
        schema: _departments(readers, f"access.schemas.{schema}", departments)
        for schema, readers in (raw.get("schemas") or {}).items()
    }
    if not schemas:
        raise _fail("access", "needs schemas: the departments reading each schema")
    for name in datasets:
        if name.split(".", 1)[0] not in schemas:
            raise _fail(name, f"its schema is not in access.schemas ({sorted(schemas)})")
    rows = raw.get("row_security") or {}
    row_department = rows.get("department")
    regions = tuple(rows.get("regions") or ())
    if row_department not in departments or not regions:
        raise _fail("access.row_security", "needs a declared department and its regions")
    return Access(schemas, row_department, regions)


@cache
def policy(path: Path = POLICY_PATH) -> Policy:
    """The repository's policy, parsed once per process."""
    return parse(yaml.safe_load(path.read_text()))
