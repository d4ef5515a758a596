"""The landing zone: list and read source files, wherever they are.

Two implementations behind the same methods, chosen by ``LANDING_URL``:
a local folder (:class:`LocalLanding`) or an S3 bucket and prefix through
boto3 (:class:`S3Landing`, also for MinIO or any S3-compatible store). Paths
inside the zone are POSIX keys relative to the zone, such as
``pos/2026-11-20/TST01_1.csv``, so the loader and the load ledger never see
where the zone lives.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlsplit

from include.config import ConfigError


@dataclass(frozen=True)
class LandingObject:
    key: str
    size: int
    # What the ledger compares to recognise a file it has already loaded: "etag:<ETag>"
    # for an S3 object (known from the listing). None for a local file: its checksum is
    # the sha256 of its bytes as stored, which the loader computes while it reads them
    # (and reads up front only for a key it has loaded before, to compare).
    checksum: str | None


class Landing(Protocol):
    """What the loader needs from a landing zone."""

    def list(self, prefix: str) -> Iterator[LandingObject]: ...

    def open(self, key: str) -> BinaryIO: ...

    def delete_if_loaded(self, key: str, checksum: str) -> bool: ...


def sha256(landing: Landing, key: str) -> str:
    """The sha256 of a landing file's bytes as stored (compressed, for a .gz file)."""
    digest = hashlib.sha256()
    with landing.open(key) as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
                checksum=None,  # not read here: see LandingObject.checksum
            )

    def open(self, key: str) -> BinaryIO:
        return (self.root / key).open("rb")

    def delete_if_loaded(self, key: str, checksum: str) -> bool:
        """Delete ``key`` if it still holds the bytes the ledger loaded (its sha256 is
        ``checksum``): a file re-sent under the same key since is kept for its load."""
        path = self.root / key
        if not path.is_file() or sha256(self, key) != checksum:
            return False
        path.unlink()
        for folder in path.parents:  # the dated folders it leaves empty
            if folder == self.root or not folder.is_relative_to(self.root) or any(folder.iterdir()):
                break
            folder.rmdir()
        return True


class LandingObjectChanged(OSError):
    """An S3 object was replaced between listing and reading.

    An ``OSError`` so that the loader records the file as failed (and a later
    run picks up the new version) instead of loading bytes that do not match
    the checksum in the ledger.
    """


class S3Landing:
    """A landing zone in an S3 bucket under a key prefix, read through boto3.

    The client is the standard boto3 one, so credentials, region, retries and
    the endpoint (``AWS_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL_S3`` for MinIO or a
    test server) come from the usual AWS environment variables and config files.

    The checksum is the object's ETag, not a sha256: reading every object to
    hash it would cost a full download per file per run just to find out it is
    already loaded. Landing files are written once and never changed, and for
    a single-part upload the ETag is the MD5 of the content, so a re-sent
    identical file under the same key is still recognised. (A multipart upload
    has a different kind of ETag, so the same bytes uploaded once in one part
    and once in several would count as a changed file and load again.)
    """

    def __init__(self, bucket: str, prefix: str = "", client: Any = None):
        if client is None:
            import boto3  # only S3 users pay for importing boto3

            # A session of its own rather than boto3's module-wide default one: that
            # one caches the credentials it found first and is not thread-safe.
            client = boto3.session.Session().client("s3")
        self.client = client
        self.bucket = bucket
        self.prefix = _folder(prefix)
        # ETag of each key as last listed, sent as If-Match when the key is read.
        self._etags: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"S3Landing(s3://{self.bucket}/{self.prefix})"

    def list(self, prefix: str) -> Iterator[LandingObject]:
        """Objects under ``prefix`` (a folder in the zone), sorted by key.

        Paginated, since one ``list_objects_v2`` call returns at most 1,000
        keys. Skips folder markers (keys ending in ``/``) and names starting
        with ``.``, which writers use for files still being written, just as
        :class:`LocalLanding` does.
        """
        found: list[LandingObject] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + _folder(prefix)):
            for item in page.get("Contents", []):
                key = item["Key"][len(self.prefix) :]
                if key.endswith("/") or key.rsplit("/", 1)[-1].startswith("."):
                    continue
                etag = item["ETag"]
                self._etags[key] = etag
                found.append(LandingObject(key, item["Size"], "etag:" + etag.strip('"')))
        yield from sorted(found, key=lambda o: o.key)

    def open(self, key: str) -> BinaryIO:
        """A buffered binary stream over the object's content, read as it is consumed.

        Never holds the whole object in memory; works as a context manager and
        under ``gzip.GzipFile`` and ``io.TextIOWrapper``. If the key was listed
        by this instance, the read is conditional on the listed ETag
        (``If-Match``), so a file replaced in between fails with
        :class:`LandingObjectChanged` instead of loading other bytes than the
        ledger records. S3 errors, including ones in the middle of the
        stream, are raised as ``OSError`` naming the object, so the loader
        records the file as failed and goes on with the others.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        where = f"s3://{self.bucket}/{self.prefix}{key}"
        request = {"Bucket": self.bucket, "Key": self.prefix + key}
        if key in self._etags:
            request["IfMatch"] = self._etags[key]
        try:
            body = self.client.get_object(**request)["Body"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "412"):
                raise LandingObjectChanged(
                    f"{where} changed since it was listed (ETag is no longer {request['IfMatch']})"
                ) from exc
            if code in ("NoSuchKey", "404"):
                raise FileNotFoundError(f"{where} does not exist") from exc
            raise OSError(f"{where}: {exc}") from exc
        except BotoCoreError as exc:
            raise OSError(f"{where}: {exc}") from exc
        return io.BufferedReader(_S3Stream(body, where), buffer_size=1 << 20)

    def delete_if_loaded(self, key: str, checksum: str) -> bool:
        """Delete ``key`` if its ETag is still the one the ledger loaded (``checksum``,
        ``etag:<ETag>``): an object re-sent under the same key since is kept."""
        from botocore.exceptions import ClientError

        request = {"Bucket": self.bucket, "Key": self.prefix + key}
        try:
            etag = self.client.head_object(**request)["ETag"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code", "") in ("NoSuchKey", "404"):
                return False
            raise OSError(f"s3://{self.bucket}/{self.prefix}{key}: {exc}") from exc
        if "etag:" + etag.strip('"') != checksum:
            return False
        self.client.delete_object(**request)
        return True


class _S3Stream(io.RawIOBase):
    """botocore's StreamingBody as a proper raw stream.

    StreamingBody has ``read``/``readinto`` but does not track ``closed`` and
    raises botocore errors; this adapter lets ``io.BufferedReader`` (and so
    gzip and text wrappers) sit on top, and turns read errors (a dropped
    connection, a short body) into ``OSError``.
    """

    def __init__(self, body: Any, name: str):
        self._body = body
        self.name = name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        from botocore.exceptions import BotoCoreError

        try:
            return self._body.readinto(buffer)
        except BotoCoreError as exc:
            raise OSError(f"{self.name}: reading failed: {exc}") from exc

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def _folder(prefix: str) -> str:
    """``"landing"`` -> ``"landing/"``, ``""`` -> ``""``: prefixes name folders, as locally."""
    prefix = prefix.strip("/")
    return prefix + "/" if prefix else ""


def landing_from_url(url: str) -> LocalLanding | S3Landing:
    """The landing zone ``LANDING_URL`` names: ``s3://bucket/prefix`` or a local path.

    Checks that the zone is reachable now, so a wrong setting fails at the
    start of a run with one sentence naming ``LANDING_URL`` rather than as a
    traceback from the first file.
    """
    if url.startswith("s3://"):
        return _s3_landing(url)
    root = Path(url.removeprefix("file://"))
    if not root.exists():
        raise ConfigError(
            f"LANDING_URL={url} does not exist: create it, point LANDING_URL at the landing "
            "zone, or run 'crm simulate' to write simulated files there."
        )
    return LocalLanding(root)


def _s3_landing(url: str) -> S3Landing:
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    parts = urlsplit(url)
    if not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"LANDING_URL={url} is not of the form s3://bucket/prefix.")
    landing = S3Landing(parts.netloc, parts.path)
    endpoint = landing.client.meta.endpoint_url
    try:
        landing.client.head_bucket(Bucket=landing.bucket)
    except (NoCredentialsError, PartialCredentialsError):
        raise ConfigError(
            f"LANDING_URL={url}: no AWS credentials found; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or make LANDING_URL a local path."
        ) from None
    except NoRegionError:
        raise ConfigError(
            f"LANDING_URL={url}: no AWS region configured; set AWS_DEFAULT_REGION."
        ) from None
    except EndpointConnectionError:
        raise ConfigError(
            f"LANDING_URL={url}: cannot reach the S3 endpoint {endpoint}; check "
            "AWS_ENDPOINT_URL and that the object store is running."
        ) from None
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket"):
            raise ConfigError(
                f"LANDING_URL={url}: bucket {landing.bucket!r} does not exist at {endpoint}; "
                "create it or point LANDING_URL at the landing bucket."
            ) from None
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise ConfigError(
                f"LANDING_URL={url}: access to bucket {landing.bucket!r} at {endpoint} was "
                "denied; check the AWS credentials and their permissions on it."
            ) from None
        raise ConfigError(f"LANDING_URL={url}: checking the bucket failed: {exc}") from None
    except BotoCoreError as exc:
        raise ConfigError(f"LANDING_URL={url}: checking the bucket failed: {exc}") from None
    return landing
