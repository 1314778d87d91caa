"""Object storage through the minio SDK: the same code for MinIO, SeaweedFS or any S3."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.commonconfig import Tags
from minio.error import S3Error
from minio.retention import Retention

from storage.config import EmbeddedS3Config, EvidenceConfig, ExternalS3Config
from storage.media.embedded_s3 import load_or_create_credentials

SHA256_META = "sha256"
META_PREFIX = "x-amz-meta-"
MIN_PART_SIZE = 5 * 1024 * 1024  # S3's smallest multipart part (but the last)
# "This object has no retention / legal hold": MinIO's codes (the SDK maps some to None)
# and SeaweedFS's.
NO_LOCK_CODES = frozenset(
    {
        "NoSuchObjectLockConfiguration",
        "ObjectLockConfigurationNotFoundError",
        "NoSuchObjectLegalHold",
    }
)
PRESIGN_MAX_S = 3600  # presigned links are for one review, not for sharing
DEFAULT_REGION = "us-east-1"  # S3's, and what SeaweedFS and MinIO answer unless set


def _http_client(ca_file: Path | None = None, verify: bool = True) -> urllib3.PoolManager:
    """Short timeouts and few retries: an unreachable S3 must fail fast, not stall uploads
    for minutes (the SDK's default) while clip windows age out of the packet ring. TLS is
    verified against the system's CAs, or `ca_file` (a private CA)."""
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=5.0, read=30.0),
        retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        maxsize=10,
        cert_reqs="CERT_REQUIRED" if verify else "CERT_NONE",
        ca_certs=str(ca_file) if ca_file is not None else None,
    )


class StorageConfigError(Exception):
    """The object store cannot be used as configured (e.g. WORM on a bucket without lock)."""


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object as the server holds it: `sha256` from its user metadata, `etag` the
    server's (the MD5 of the bytes for a one-part upload)."""

    key: str
    size: int
    sha256: str
    etag: str = ""
    content_type: str = ""
    metadata: Mapping[str, str] | None = None


def expected_etag(part_md5s: list[bytes], whole_md5: str) -> str:
    """The ETag S3 gives an upload: the MD5 of the bytes for one part, else the MD5 of the
    parts' MD5s and the part count (what MinIO, AWS and SeaweedFS all do without SSE).

    Example:
        >>> expected_etag([hashlib.md5(b"x").digest()], hashlib.md5(b"x").hexdigest())
        '9dd4e461268c8034f5c8564e155c67a6'
        >>> expected_etag([b"\\0" * 16, b"\\1" * 16], "ignored").endswith("-2")
        True
    """
    if len(part_md5s) <= 1:
        return whole_md5
    return f"{hashlib.md5(b''.join(part_md5s)).hexdigest()}-{len(part_md5s)}"


def object_key(site: str, camera_id: str, at: float, name: str) -> str:
    """`SITE/CAMERA/YYYY/MM/DD/NAME`, dated in UTC.

    Example:
        >>> object_key("hq", "gate", 0.0, "abc.mp4")
        'hq/gate/1970/01/01/abc.mp4'
    """
    day = datetime.fromtimestamp(at, UTC)
    return f"{site}/{camera_id}/{day:%Y/%m/%d}/{name}"


class ObjectStore:
    """One bucket of an S3 server; every object carries its SHA-256 in user metadata."""

    def __init__(
        self,
        client: Minio,
        bucket: str,
        worm: EvidenceConfig | None = None,
        public: Minio | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.worm = worm  # set: evidence is kept by the server (object lock)
        self.public = public  # signs links for clients that reach S3 by another address

    @classmethod
    def from_config(
        cls, config: EmbeddedS3Config | ExternalS3Config, worm: EvidenceConfig | None = None
    ) -> ObjectStore:
        """The configured bucket; `worm` is the evidence settings when `evidence.worm` is on."""
        if isinstance(config, EmbeddedS3Config):
            credentials = load_or_create_credentials(config.data_dir)
            access_key, secret_key = credentials.access_key, credentials.secret_key
            client = Minio(
                f"127.0.0.1:{config.port}",
                access_key=access_key,
                secret_key=secret_key,
                secure=False,
                http_client=_http_client(),
            )
            region = None
        else:
            access_key, secret_key = config.access_key, config.secret_key.get_secret_value()
            client = Minio(
                config.endpoint,
                access_key=access_key,
                secret_key=secret_key,
                secure=config.secure,
                region=config.region,
                http_client=_http_client(config.ca_file, config.verify_tls),
            )
            region = config.region
        public = None
        if config.public_url is not None:
            # Only signs, never connects: the region is given so that no lookup is made.
            outside = urlsplit(config.public_url)
            public = Minio(
                outside.netloc,
                access_key=access_key,
                secret_key=secret_key,
                secure=outside.scheme == "https",
                region=region or DEFAULT_REGION,
            )
        return cls(client, config.bucket, worm, public)

    def ensure_bucket(self) -> None:
        """Create the bucket if missing: with object lock when `worm` is set, which an
        existing bucket must then have too (S3 cannot add it later)."""
        if not self.client.bucket_exists(self.bucket):
            self.client.make_bucket(self.bucket, object_lock=self.worm is not None)
            return
        if self.worm is not None:
            try:
                self.client.get_object_lock_config(self.bucket)
            except S3Error as exc:
                raise StorageConfigError(
                    f"bucket {self.bucket!r} was made without object lock, which evidence.worm "
                    "needs: use a new bucket"
                ) from exc

    def put(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None
    ) -> StoredObject:
        digest = hashlib.sha256(data).hexdigest()
        self.client.put_object(
            self.bucket,
            key,
            io.BytesIO(data),
            len(data),
            content_type=content_type,
            metadata={**(metadata or {}), SHA256_META: digest},
        )
        return StoredObject(key, len(data), digest)

    def put_stream(
        self,
        key: str,
        data: BinaryIO,
        size: int,
        content_type: str,
        metadata: Mapping[str, str],
        sha256: str,
        tags: Mapping[str, str] | None = None,
        part_size: int = 0,
        evidence: bool = False,
    ) -> str:
        """Upload `size` bytes of `data` whose SHA-256 is `sha256` (the caller's, checked
        against its own record): one PUT up to `part_size`, multipart in parts of
        `part_size` beyond (0: the SDK's choice); `evidence` (an event's clip or snapshot)
        is retained by the server when the store is `worm`. Returns the server's ETag."""
        retention = None
        if evidence and self.worm is not None:
            until = datetime.now(UTC) + timedelta(days=self.worm.retain_days)
            retention = Retention(self.worm.mode, until)
        object_tags = None
        if tags:
            object_tags = Tags(for_object=True)
            object_tags.update(tags)
        result = self.client.put_object(
            self.bucket,
            key,
            data,
            size,
            content_type=content_type,
            metadata={**metadata, SHA256_META: sha256},
            tags=object_tags,
            part_size=part_size,
            retention=retention,
        )
        return str(result.etag or "").strip('"')

    def stat(self, key: str) -> StoredObject | None:
        """The object's size, SHA-256 (user metadata), ETag, type and metadata; None if
        there is no such object."""
        try:
            head = self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                return None
            raise
        metadata = {
            name.lower().removeprefix(META_PREFIX): str(value)
            for name, value in (head.metadata or {}).items()
            if name.lower().startswith(META_PREFIX)
        }
        return StoredObject(
            key,
            int(head.size or 0),
            metadata.get(SHA256_META, ""),
            (head.etag or "").strip('"'),
            head.content_type or "",
            metadata,
        )

    def retention(self, key: str, version_id: str | None = None) -> Retention | None:
        """The object lock retention of the object (version), None if it has none."""
        try:
            return self.client.get_object_retention(self.bucket, key, version_id=version_id)
        except S3Error as exc:
            if exc.code in NO_LOCK_CODES:
                return None
            raise

    def versioned(self) -> bool:
        """Whether the bucket keeps versions (always so with object lock)."""
        return self.client.get_bucket_versioning(self.bucket).status == "Enabled"

    def versions(self, key: str) -> list[str | None]:
        """The version ids of `key` (on a versioned bucket; else [None] if it exists)."""
        found = self.client.list_objects(self.bucket, prefix=key, include_version=True)
        return [item.version_id for item in found if item.object_name == key]

    def keys(self, prefix: str) -> list[str]:
        """The keys under `prefix`, in order."""
        found = self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
        return sorted(str(item.object_name) for item in found)

    def legal_hold(self, key: str, version_id: str | None = None) -> bool:
        """Whether the object (version) is under an S3 legal hold."""
        try:
            return self.client.is_object_legal_hold_enabled(self.bucket, key, version_id=version_id)
        except S3Error as exc:
            if exc.code in NO_LOCK_CODES:
                return False
            raise

    def tags(self, key: str) -> dict[str, str]:
        found = self.client.get_object_tags(self.bucket, key)
        return dict(found) if found else {}

    def open(
        self, key: str, chunk_size: int = 256 * 1024, offset: int = 0, length: int = 0
    ) -> Iterator[bytes]:
        """The object's bytes in chunks (from `offset`, `length` of them; 0: to the end). The
        request is made now, so a missing object or an unreachable server raises here, before
        the caller has promised anything."""
        response = self.client.get_object(self.bucket, key, offset=offset, length=length)

        def chunks() -> Iterator[bytes]:
            try:
                yield from response.stream(chunk_size)
            finally:
                response.close()
                response.release_conn()

        return chunks()

    def read(self, key: str) -> bytes:
        return b"".join(self.open(key))

    def presigned_url(self, key: str, expires_s: int = 300) -> str:
        """A GET link to `key` that works without credentials for `expires_s` (at most an
        hour: a clip link is for one review)."""
        expires = timedelta(seconds=max(1, min(expires_s, PRESIGN_MAX_S)))
        signer = self.public or self.client
        return signer.presigned_get_object(self.bucket, key, expires=expires)
