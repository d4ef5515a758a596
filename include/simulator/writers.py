"""Landing-zone file formats (contract/sources.yml) and atomic, byte-reproducible writes.

Every file is written to a temporary name in its folder and renamed into
place, so a loader listing the folder never sees half a file. Gzip output has
no file name and mtime 0 in its header, so the same day gives the same bytes.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path

from include.simulator.days import DayResult, PosFile
from include.simulator.world import BEHAVIOUR_HEADER, World

POS_HEADER = [
    "receipt_no", "store_code", "txn_ts", "txn_type", "line_no", "sku", "quantity", "unit_price",
    "discount", "payment_method", "loyalty_card_no", "staff_id",
]  # fmt: skip
STORES_HEADER = ["store_code", "store_name", "district", "region", "opened_on", "closed_on"]
LOYALTY_HEADER = [
    "card_no", "full_name", "phone", "email", "district", "tier", "joined_on", "marketing_opt_in", "updated_at",
]  # fmt: skip
PRIVACY_HEADER = ["request_id", "received_at", "request_type", "email", "phone", "loyalty_card_no"]
IDENTITY_HEADER = ["person_id", "id_type", "id_value"]


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # atomic: readers see the old file or the new one, never a part


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def csv_bytes(header: list[str], rows: Iterable[list], *, legacy: bool = False) -> bytes:
    """RFC 4180 CSV. ``legacy``: as older tills write it, UTF-8 BOM, CRLF, every field quoted."""
    buf = io.StringIO()
    writer = csv.writer(
        buf,
        lineterminator="\r\n" if legacy else "\n",
        quoting=csv.QUOTE_ALL if legacy else csv.QUOTE_MINIMAL,
    )
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8-sig" if legacy else "utf-8")


def pos_file(world: World, f: PosFile) -> tuple[str, bytes]:
    store = world.stores[f.store]
    name = f"pos/{f.business_date.isoformat()}/{store.code}_{f.seq}.csv"
    data = b"" if f.rows is None else csv_bytes(POS_HEADER, f.rows, legacy=store.legacy_till)
    if store.gzip_till:
        return name + ".gz", gzip_bytes(data)
    return name, data


def day_files(world: World, result: DayResult) -> list[tuple[str, bytes]]:
    """(relative path, content) of every landing file the day produces."""
    day = result.day.isoformat()
    files = [pos_file(world, f) for f in result.pos_files]
    if result.stores_csv is not None:
        files.append(("reference/stores.csv", csv_bytes(STORES_HEADER, result.stores_csv)))
    files.append((f"loyalty/{day}.csv", csv_bytes(LOYALTY_HEADER, result.loyalty)))
    for (utc_date, hour), lines in result.web.items():
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        files.append((f"web/{utc_date}/{hour:02d}.jsonl.gz", gzip_bytes(data)))
    complaints = "".join(json.dumps(doc, ensure_ascii=False) + "\n" for doc in result.complaints)
    files.append((f"complaints/{day}.jsonl", complaints.encode("utf-8")))
    files.append((f"privacy/{day}.csv", csv_bytes(PRIVACY_HEADER, result.privacy)))
    return files


def write_files(root: Path, files: list[tuple[str, bytes]]) -> None:
    for rel, data in files:
        atomic_write(root / rel, data)


def identities_bytes(rows: list[tuple[str, str, str]]) -> bytes:
    return csv_bytes(IDENTITY_HEADER, rows)


def behaviour_bytes(rows: list[list[str]]) -> bytes:
    return csv_bytes(BEHAVIOUR_HEADER, rows)
