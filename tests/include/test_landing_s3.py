"""The S3 landing zone, over HTTP against moto's S3 server (no network beyond 127.0.0.1).

The boto3 clients here are built from the environment alone (AWS_ENDPOINT_URL
and fake credentials), exactly as in production, so the tests also check that
boto3 picks the endpoint up by itself.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import boto3
import psycopg
import pytest
from moto.server import ThreadedMotoServer

from include.config import ConfigError
from include.landing import LandingObjectChanged, S3Landing, landing_from_url
from include.loaders import load_source
from include.warehouse import apply_schema

HEADER = (
    "receipt_no,store_code,txn_ts,txn_type,line_no,sku,quantity,unit_price,discount,"
    "payment_method,loyalty_card_no,staff_id"
)


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """A moto S3 server on a free local port, with fake credentials in the environment."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    nowhere = tmp_path_factory.mktemp("aws") / "none"
    with pytest.MonkeyPatch.context() as mp:
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
            mp.delenv(var, raising=False)
        mp.setenv("AWS_CONFIG_FILE", str(nowhere))  # ignore the developer's ~/.aws
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        yield endpoint
    server.stop()


@pytest.fixture
def bucket(s3_endpoint):
    """A new, empty bucket; the client comes from the environment, with no endpoint passed."""
    client = boto3.client("s3")
    assert client.meta.endpoint_url == s3_endpoint
    name = f"landing-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return client, name


def test_listing_paginates_past_1000_keys_relative_sorted_without_dot_files(bucket):
    client, name = bucket
    keys = [f"landing/web/2026-11-20/{i:04d}.jsonl.gz" for i in range(1005)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=name, Key=k, Body=b"x"), keys))
    for noise in [
        "landing/web/2026-11-20/.0001.jsonl.gz.tmp",  # a writer's temporary file
        "landing/web/",  # a folder marker
        "landing/webshop/2026-11-20/00.jsonl.gz",  # another folder with the same start
        "elsewhere/web/2026-11-20/00.jsonl.gz",  # outside the landing prefix
    ]:
        client.put_object(Bucket=name, Key=noise, Body=b"y")

    listed = list(landing_from_url(f"s3://{name}/landing").list("web/"))

    assert [o.key for o in listed] == sorted(k.removeprefix("landing/") for k in keys)
    assert {o.size for o in listed} == {1}


def test_open_streams_gzip_csv_and_checksum_follows_content(bucket):
    client, name = bucket
    text = HEADER + "\r\nR-1,TST01,2026-11-20 10:00:00,SALE,1,SKU1,2,10.50,0,cash,,S1\r\n" * 3
    body = gzip.compress(("\ufeff" + text).encode())
    key = "pos/2026-11-20/TST01_1.csv.gz"
    client.put_object(Bucket=name, Key=f"landing/{key}", Body=body)
    landing = landing_from_url(f"s3://{name}/landing/")

    [obj] = landing.list("pos/")
    etag = client.head_object(Bucket=name, Key=f"landing/{key}")["ETag"].strip('"')
    assert obj == type(obj)(key, len(body), f"etag:{etag}")
    assert etag == hashlib.md5(body).hexdigest()
    with landing.open(obj.key) as raw:
        lines = io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8-sig", newline="")
        assert lines.read() == text

    # The same bytes sent again keep the checksum (the ledger skips them); new bytes change it.
    client.put_object(Bucket=name, Key=f"landing/{key}", Body=body)
    assert [o.checksum for o in landing.list("pos/")] == [obj.checksum]
    client.put_object(Bucket=name, Key=f"landing/{key}", Body=gzip.compress(b"other"))
    assert [o.checksum for o in landing.list("pos/")] != [obj.checksum]


def test_object_replaced_after_listing_fails_instead_of_reading_new_bytes(bucket):
    client, name = bucket
    client.put_object(Bucket=name, Key="landing/loyalty/2026-11-20.csv", Body=b"old\n")
    landing = landing_from_url(f"s3://{name}/landing")
    [obj] = landing.list("loyalty/")
    client.put_object(Bucket=name, Key="landing/loyalty/2026-11-20.csv", Body=b"new!\n")

    with pytest.raises(LandingObjectChanged, match="changed since it was listed"):
        landing.open(obj.key)
    assert issubclass(LandingObjectChanged, OSError)  # so the loader records a failed file

    [again] = landing.list("loyalty/")  # a new listing reads the new version
    with landing.open(again.key) as fh:
        assert fh.read() == b"new!\n"


def test_a_loaded_object_is_deleted_only_while_it_holds_what_was_loaded(bucket):
    """The retention purge's landing delete (include/retention.py purge_files)."""
    client, name = bucket
    key = "pos/2026-07-01/TST01_1.csv"
    client.put_object(Bucket=name, Key=f"landing/{key}", Body=b"loaded\n")
    landing = landing_from_url(f"s3://{name}/landing")
    [loaded] = landing.list("pos/")
    client.put_object(Bucket=name, Key=f"landing/{key}", Body=b"re-sent, not loaded yet\n")

    assert not landing.delete_if_loaded(key, loaded.checksum)
    assert [o.key for o in landing.list("pos/")] == [key]
    [resent] = landing.list("pos/")
    assert landing.delete_if_loaded(key, resent.checksum)
    assert list(landing.list("pos/")) == []
    assert not landing.delete_if_loaded(key, resent.checksum)  # already gone: nothing to do


def test_loader_loads_pos_file_from_s3_once_with_etag_in_ledger(bucket, fresh_db_url):
    client, name = bucket
    apply_schema(fresh_db_url)
    body = (
        HEADER
        + "\nTST01-20261120-000001,TST01,2026-11-20 10:00:00,SALE,1,SKU1,2,10.50,0,cash,1234567890,S1"
        + "\nTST01-20261120-000001,TST01,2026-11-20 10:00:00,SALE,2,SKU2,1,5.00,0.50,cash,,S1\n"
    ).encode()
    client.put_object(Bucket=name, Key="landing/pos/2026-11-20/TST01_1.csv", Body=body)

    def load():
        return load_source(
            "pos",
            warehouse_url=fresh_db_url,
            landing=landing_from_url(f"s3://{name}/landing"),
            business_date=date(2026, 11, 20),
        )

    first = load()
    second = load()

    assert len(first.loaded) == 1 and not first.failed
    assert second.skipped == ["pos/2026-11-20/TST01_1.csv"] and not second.loaded
    with psycopg.connect(fresh_db_url) as conn:
        rows = conn.execute(
            "select _file, line_no, sku, unit_price::text from raw.pos_lines order by line_no"
        ).fetchall()
        ledger = conn.execute(
            "select object, object_size, checksum, status, rows_loaded from ops.load_ledger"
        ).fetchall()
    assert rows == [
        ("pos/2026-11-20/TST01_1.csv", 1, "SKU1", "10.50"),
        ("pos/2026-11-20/TST01_1.csv", 2, "SKU2", "5.00"),
    ]
    assert ledger == [
        (
            "pos/2026-11-20/TST01_1.csv",
            len(body),
            "etag:" + hashlib.md5(body).hexdigest(),
            "loaded",
            2,
        )
    ]


def test_missing_bucket_is_a_config_error_naming_landing_url(s3_endpoint):
    with pytest.raises(ConfigError, match=r"LANDING_URL=s3://no-such-bucket/landing: bucket"):
        landing_from_url("s3://no-such-bucket/landing")


def test_missing_credentials_is_a_config_error_naming_landing_url(bucket, monkeypatch):
    _, name = bucket
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ConfigError, match=r"LANDING_URL=.*no AWS credentials"):
        landing_from_url(f"s3://{name}/landing")


def test_explicit_client_and_empty_prefix(bucket):
    client, name = bucket
    client.put_object(Bucket=name, Key="reference/stores.csv", Body=b"store_code\n")
    landing = S3Landing(name, "", client=client)
    assert [o.key for o in landing.list("reference")] == ["reference/stores.csv"]
