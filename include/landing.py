"""The landing zone: list and read source files, wherever they are.

v1 reads a local folder; ``s3://`` through boto3 comes with the extract-load
issue behind the same two methods. Paths inside the zone are POSIX keys such
as ``pos/2026-11-20/TST01_1.csv``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from include.config import ConfigError


@dataclass(frozen=True)
class LandingObject:
    key: str
    size: int
    checksum: str  # sha256 of the content: a re-sent identical file is recognised


class LocalLanding:
    def __init__(self, root: Path):
        self.root = root

    def list(self, prefix: str) -> Iterator[LandingObject]:
        base = self.root / prefix
        if not base.exists():
            return
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            if path.name.startswith("."):  # writers' temporary files
                continue
            yield LandingObject(
                key=path.relative_to(self.root).as_posix(),
                size=path.stat().st_size,
                checksum=_sha256(path),
            )

    def open(self, key: str) -> BinaryIO:
        return (self.root / key).open("rb")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def landing_from_url(url: str) -> LocalLanding:
    if url.startswith("s3://"):
        raise ConfigError(
            f"LANDING_URL={url}: s3:// landing zones are not supported in this version yet; "
            "use a local path."
        )
    root = Path(url.removeprefix("file://"))
    if not root.exists():
        raise ConfigError(
            f"LANDING_URL={url} does not exist: create it, point LANDING_URL at the landing "
            "zone, or run 'crm simulate' to write simulated files there."
        )
    return LocalLanding(root)
