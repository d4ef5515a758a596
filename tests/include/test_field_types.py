"""Both load paths read every contract field the same way (property-based).

The row-by-row path types a value with ``FieldType.__call__`` in Python; the COPY fast
path checks and casts the same text in PostgreSQL (``check_sql`` / ``value_sql``). For
any text, of any field type the contract uses, both accept it with the same typed
value, or both refuse it. Values are generated around each type's own syntax and
around what PostgreSQL's wider input syntax would take (``now``, ``NaN``, ``1_000``,
``24:00:00``, offsets, overflow).
"""

from __future__ import annotations

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from include.loaders import SOURCES, FieldType

TYPES = sorted(
    {c.parse for s in SOURCES.values() for c in s.columns if isinstance(c.parse, FieldType)},
    key=lambda t: t.name,
)

POSTGRES_SPELLINGS = [
    "", " ", "0", "-0", "+1", "1_000", " 12", "12 ", "0x1F", "1e3", "1E-2", ".5", "5.", "NaN",
    "nan", "Infinity", "-Infinity", "inf", "now", "today", "tomorrow", "epoch", "infinity",
    "-infinity", "allballs", "yes", "no", "on", "off", "t", "f", "true", "false", "1", "y", "Y",
    "N", "2147483647", "2147483648", "-2147483648", "-2147483649", "9223372036854775807",
    "9223372036854775808", "99999999999999999999", "9999999999.99", "9999999999.995",
    "-9999999999.995", "0.005", "-0.005", "100000000000000000000000000", "9" * 30 + ".99", "١٢", "１２", "2026-12-01", "2026-02-29", "2024-02-29",
    "2026-02-30", "0000-01-01", "0001-01-01", "9999-12-31", "20261201", "2026-W48-2",
    "12/01/2026", "2026-12-01 10:00:00", "2026-12-01 24:00:00", "2026-12-01 23:59:60",
    "2026-12-01 10:00", "2026-12-01 10:00:00.5", "2026-12-01 10:00:00+08", "2026-12-01T10:00:00",
    "2026-12-01T10:00:00Z", "2026-12-01T10:00:00+08:00", "2026-12-01T10:00:00+0800",
    "2026-12-01T10:00:00+08", "2026-12-01T10:00:00-15:59", "2026-12-01T10:00:00+16:00",
    "2026-12-01T10:00:00.1234567Z", "0001-01-01T00:00:00+15:00", "9999-12-31T23:59:59-15:00",
    "2026-12-01T10:00:00 PST", "12345678-1234-1234-1234-123456789ABC",
    "{12345678-1234-1234-1234-123456789abc}", "123456781234123412341234567890ab",
]  # fmt: skip

_ALPHABET = "0123456789+-.:TZ eE_ YNyn/WxX" + "aft"


def _values(field_type: FieldType):
    own = [st.sampled_from(POSTGRES_SPELLINGS), st.text(alphabet=_ALPHABET, max_size=32)]
    if field_type.pattern:
        syntax = st.from_regex(field_type.pattern, fullmatch=True)
        own.append(syntax)
        # one character changed, dropped or added around a well-formed value
        own.append(
            st.tuples(
                syntax, st.integers(0, 40), st.sampled_from(["", "0", "9", " ", "-", ":"])
            ).map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + 1 :])
        )
    return st.one_of(own)


def _python(field_type: FieldType, value: str):
    try:
        return True, field_type(value)
    except ValueError:
        return False, None


def _postgres(conn: psycopg.Connection, field_type: FieldType, values: list[str]) -> list:
    check, cast = field_type.check_sql("v"), field_type.value_sql("v")
    rows = conn.execute(
        f"select ok, case when ok then {cast} end from"
        f" (select v, ord, {check} as ok from unnest(%s::text[]) with ordinality as u(v, ord)) s"
        " order by ord",
        (values,),
    ).fetchall()
    return [(bool(ok), value) for ok, value in rows]


def _same(python_value, postgres_value) -> bool:
    if postgres_value is not None and type(postgres_value).__name__ == "UUID":
        postgres_value = str(postgres_value)
    return python_value == postgres_value


@pytest.fixture(scope="module")
def conn(test_server):
    """One connection for all the examples (no table needed: the checks are expressions)."""
    with psycopg.connect(test_server.url("postgres"), autocommit=True) as conn:
        conn.execute("set timezone = 'UTC'")
        yield conn


@pytest.mark.parametrize("field_type", TYPES, ids=[t.name for t in TYPES])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_both_paths_read_a_value_alike(conn, field_type, data):
    values = data.draw(st.lists(_values(field_type), min_size=1, max_size=25))
    # NUL and lone surrogates cannot reach PostgreSQL at all (COPY fails and the file goes
    # row by row): the Python parser must refuse them.
    sendable = [v for v in values if "\x00" not in v and v.isprintable() or v == ""]
    for value in set(values) - set(sendable):
        assert not _python(field_type, value)[0], value
    for value, (ok, typed) in zip(sendable, _postgres(conn, field_type, sendable), strict=True):
        py_ok, py_typed = _python(field_type, value)
        assert py_ok == ok, f"{field_type.name} {value!r}: Python {py_ok}, PostgreSQL {ok}"
        if ok:
            assert _same(py_typed, typed), f"{field_type.name} {value!r}: {py_typed!r} != {typed!r}"


def test_every_contract_field_has_a_type_both_paths_share():
    untyped = [
        f"{s.name}.{c.name}"
        for s in SOURCES.values()
        for c in s.columns
        if not isinstance(c.parse, FieldType)
    ]
    assert untyped == []
    names = {t.name for t in TYPES}
    assert names >= {"whole number (int)", "whole number (bigint)", "decimal amount", "UUID"}
