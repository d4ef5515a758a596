"""What the suite modules share: severity tags and the binding of a suite to a table.

Severity decides whether a failure stops publication, so it is written next to
each expectation, not in the runner. GX 1.24 has a ``severity`` field of its
own (default ``critical``, shown in Data Docs) while our contract is
``meta["severity"]``; :func:`severity` sets both so they can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

CRITICAL = "critical"
"""A failure stops the run: nothing downstream is published."""

WARNING = "warning"
"""A failure is listed in the log and in Data Docs; the run goes on."""


def severity(level: str) -> dict[str, Any]:
    """Keyword arguments that tag an expectation: ``ExpectX(..., **severity(CRITICAL))``.

    A fresh ``meta`` dict per call: GX keeps a reference, so sharing one dict
    between expectations would let a change to one leak into the others.
    """
    if level not in (CRITICAL, WARNING):
        raise ValueError(f"severity must be {CRITICAL!r} or {WARNING!r}, got {level!r}")
    return {"severity": level, "meta": {"severity": level}}


@dataclass(frozen=True)
class TableValidation:
    """One suite validated against one whole table (or view).

    Several tables may share a suite (``raw_tables``); they must then pass
    equal expectation lists, because GX stores a suite once by name.
    """

    schema: str
    table: str
    suite_name: str
    expectations: list[Expectation] = field(repr=False)

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.table}"
