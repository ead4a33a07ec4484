"""Blobs as objects of an S3-compatible object store (MinIO, Ceph RGW, AWS S3, ...) through boto3.

For fleets whose machines share no filesystem. A blob is the object ``<prefix>/<key>`` of one bucket.

URL: ``s3://bucket[/prefix][?endpoint_url=http://127.0.0.1:9000&region=us-east-1]``. Query keys (all optional):

- ``endpoint_url``: the service (MinIO, Ceph); omitted for AWS.
- ``region``: the signing region (boto3's own default when omitted).
- ``addressing_style``: ``path``, ``virtual`` or ``auto``; ``path`` when an endpoint is given (what MinIO and Ceph
  expect), boto3's ``auto`` otherwise.
- ``connect_timeout``, ``read_timeout`` (seconds; default 3 and 10) and ``max_attempts`` (total attempts of one
  request, first included; default 3): set on botocore's ``Config`` with the ``standard`` retry mode (exponential
  backoff with jitter, retrying throttling, 5xx and connection errors).

Credentials are never part of the URL (a URL with ``user:password@`` is refused): boto3's standard chain supplies
them (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE`` and the shared config files, container and
instance roles).

Atomicity: an S3 PUT is atomic. The object becomes visible, to reads and to listings, only once the whole body has
arrived (a failed or interrupted upload leaves the previous object, or none); an overwrite is seen whole, old or new.
Uploads send ``Content-MD5``, which every S3-compatible service checks, so a body damaged on the way is refused.
botocore's newer default checksums (CRC32 headers, ``aws-chunked`` trailers) are set to ``when_required``, because
several S3-compatible services refuse them; :meth:`S3Store.delete_prefix` deletes object by object rather than with
DeleteObjects, which older MinIO and Ceph refuse without a ``Content-MD5`` that botocore no longer sends. One PUT
holds at most 5 GiB, far above a checkpoint.

boto3 is optional (``pip install 'simfleet[s3]'``): this module imports it only when a store is created.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any
from urllib.parse import urlencode, urlsplit

from simfleet.shared.errors import CheckpointError, ConfigError
from simfleet.shared.stores.base import BlobStore, check_key, check_prefix, parse_query

INSTALL_HINT = "pip install 'simfleet[s3]'"
QUERY_KEYS = ("endpoint_url", "region", "addressing_style", "connect_timeout", "read_timeout", "max_attempts")
ADDRESSING_STYLES = ("auto", "path", "virtual")
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MISSING = ("NoSuchKey", "404", "NotFound")
_DENIED = ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled",
           "ExpiredToken", "InvalidToken", "AccountProblem")  # fmt: skip


def _boto3() -> Any:
    """The boto3 module, or a ConfigError that says how to install it."""
    try:
        import boto3
    except ImportError as exc:
        raise ConfigError(f"an s3:// checkpoint store needs boto3: {INSTALL_HINT}") from exc
    return boto3


class S3Store(BlobStore):
    """The objects under ``prefix`` in ``bucket`` (module docstring for the URL form and its options).

    Creating a store makes no request; the first operation finds out whether the bucket is there and reachable.

    Args:
        bucket: the bucket (it must exist).
        prefix: folder inside the bucket that every key is put under (``fleet/checkpoints``), or empty.
        endpoint_url: the service's URL (MinIO, Ceph); None for AWS.
        region: the signing region; None for boto3's default.
        addressing_style: ``path``, ``virtual`` or ``auto``; None for ``path`` with an endpoint, else ``auto``.
        connect_timeout: seconds to connect.
        read_timeout: seconds to wait for a response.
        max_attempts: attempts of one request, the first included (standard retry mode).

    Raises:
        ConfigError: a bad argument, or boto3 not installed.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        addressing_style: str | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        max_attempts: int = 3,
    ) -> None:
        if not _BUCKET.match(bucket or ""):
            raise ConfigError(f"bad S3 bucket name {bucket!r} (letters, digits, '.', '-', '_')", key="bucket")
        prefix = prefix.strip("/")
        if prefix:
            check_prefix(prefix + "/")
        if endpoint_url is not None:
            _check_endpoint(endpoint_url)
        if addressing_style is None:
            addressing_style = "path" if endpoint_url else "auto"
        if addressing_style not in ADDRESSING_STYLES:
            raise ConfigError(f"addressing_style must be one of {', '.join(ADDRESSING_STYLES)}, got "
                              f"{addressing_style!r}", key="addressing_style")  # fmt: skip
        if not connect_timeout > 0 or not read_timeout > 0:
            raise ConfigError(f"timeouts must be positive, got connect {connect_timeout}, read {read_timeout}")
        if max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, got {max_attempts}", key="max_attempts")
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.region = region
        query = {"endpoint_url": endpoint_url, "region": region}
        self.url = f"s3://{bucket}/{prefix}".rstrip("/") + (
            "?" + urlencode({k: v for k, v in query.items() if v}, safe=":/") if any(query.values()) else ""
        )
        boto3 = _boto3()
        from botocore.config import Config

        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            s3={"addressing_style": addressing_style},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client: Any = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=config
        )

    @classmethod
    def from_url(cls, url: str) -> S3Store:
        """The store an ``s3://`` URL names.

        Raises:
            ConfigError: naming what is wrong (no bucket, credentials in the URL, an unknown or repeated query key,
                a bad value), or boto3 not installed.
        """
        parts = urlsplit(url)
        if parts.scheme != "s3":
            raise ConfigError(f"not an s3:// URL: {url!r}")
        if "@" in parts.netloc:
            # Never echo the URL: it holds a secret.
            raise ConfigError("credentials are never part of an s3:// URL (s3://user:secret@bucket was given); use "
                              "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an instance role")  # fmt: skip
        # Messages show the URL without its query: a value given under a wrong name might be a secret.
        shown = f"s3://{parts.netloc}{parts.path}"
        if not parts.netloc:
            raise ConfigError(f"no bucket in {shown!r} (expected s3://bucket[/prefix][?endpoint_url=...&region=...])")
        if ":" in parts.netloc:
            raise ConfigError(f"a bucket has no port ({shown!r}); give the service as ?endpoint_url=http://host:port")
        if parts.fragment:
            raise ConfigError(f"unexpected '#' fragment in {shown!r}")
        options = parse_query(parts.query, QUERY_KEYS, shown, allow_empty=False)
        timeouts: dict[str, Any] = {}
        for name, kind in (("connect_timeout", float), ("read_timeout", float), ("max_attempts", int)):
            if name in options:
                try:
                    timeouts[name] = kind(options[name])
                except ValueError as exc:
                    raise ConfigError(f"{name} must be a number, got {options[name]!r}", key=name) from exc
        return cls(
            parts.netloc,
            parts.path,
            endpoint_url=options.get("endpoint_url"),
            region=options.get("region"),
            addressing_style=options.get("addressing_style"),
            **timeouts,
        )

    # -------------------------------------------------------------------------------------------------- helpers

    def _object(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, what: str, exc: Exception) -> CheckpointError:
        """``exc`` (a botocore error) as a CheckpointError naming the store, ``what`` and the reason."""
        from botocore.exceptions import (
            ClientError,
            ConnectionError,
            HTTPClientError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                reason = f"no such bucket {self.bucket!r}"
            elif code in _MISSING or (status == 404 and not code):
                reason = "no such blob"
            elif code in _DENIED or status == 403:
                message = error.get("Message")
                reason = f"access denied ({code or status}" + (f": {message})" if message else ")")
            else:
                reason = f"{code or status}: {error.get('Message', exc)}"
        elif isinstance(exc, NoCredentialsError | PartialCredentialsError):
            reason = (f"no usable credentials ({exc}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                      "AWS_PROFILE, or give the machine a role")  # fmt: skip
        elif isinstance(exc, ConnectionError | HTTPClientError):
            reason = f"unreachable ({type(exc).__name__}: {exc})"
        else:
            reason = f"{type(exc).__name__}: {exc}"
        return CheckpointError(f"{self.url}: {what}: {reason}")

    @staticmethod
    def _errors() -> tuple[type[Exception], ...]:
        from botocore.exceptions import BotoCoreError, ClientError

        return (BotoCoreError, ClientError)

    # ---------------------------------------------------------------------------------------------------- blobs

    def put(self, key: str, blob: bytes) -> None:
        """PUT the object (atomic: it is visible whole or not at all), with its ``Content-MD5``."""
        name = self._object(check_key(key))
        body = bytes(blob)
        md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
        try:
            self._client.put_object(Bucket=self.bucket, Key=name, Body=body, ContentMD5=md5)
        except self._errors() as exc:
            raise self._error(key, exc) from exc

    def get(self, key: str) -> bytes:
        """The object's body (botocore checks that every byte announced arrived)."""
        name = self._object(check_key(key))
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=name)
            with response["Body"] as body:
                data: bytes = body.read()
        except self._errors() as exc:
            raise self._error(key, exc) from exc
        return data

    def delete(self, key: str) -> None:
        """DELETE the object (S3 answers a missing one with success too)."""
        name = self._object(check_key(key))
        try:
            self._client.delete_object(Bucket=self.bucket, Key=name)
        except self._errors() as exc:
            raise self._error(key, exc) from exc

    def keys(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted; only complete objects are listed (never a multipart upload in progress)."""
        check_prefix(prefix)
        start = len(self.prefix) + 1 if self.prefix else 0
        found: list[str] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._object(prefix) if self.prefix else prefix
            )
            for page in pages:
                found.extend(entry["Key"][start:] for entry in page.get("Contents", ()))
        except self._errors() as exc:
            raise self._error(f"keys under {prefix!r}", exc) from exc
        return sorted(found)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``, one DELETE each (portable to every S3-compatible service)."""
        removed = 0
        for key in self.keys(prefix):
            self.delete(key)
            removed += 1
        return removed

    def close(self) -> None:
        """Close the client's connection pool."""
        self._client.close()


def _check_endpoint(endpoint_url: str) -> None:
    parts = urlsplit(endpoint_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"endpoint_url must be http(s)://host[:port], got {endpoint_url!r}", key="endpoint_url")
    if parts.username or parts.password:
        raise ConfigError("credentials are never part of endpoint_url; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                          "AWS_PROFILE or an instance role", key="endpoint_url")  # fmt: skip
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        raise ConfigError(f"bad port in endpoint_url {endpoint_url!r}", key="endpoint_url") from exc
