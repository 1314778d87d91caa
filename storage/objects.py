"""Object storage through the minio SDK: the same code for MinIO, SeaweedFS or any S3."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import urllib3
from minio import Minio

from storage.config import EmbeddedS3Config, ExternalS3Config
from storage.embedded import load_or_create_credentials

SHA256_META = "sha256"


def _http_client() -> urllib3.PoolManager:
    """Short timeouts and few retries: an unreachable S3 must fail fast, not stall uploads
    for minutes (the SDK's default) while clip windows age out of the packet ring."""
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=5.0, read=30.0),
        retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        maxsize=10,
    )


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    sha256: str


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

    def __init__(self, client: Minio, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @classmethod
    def from_config(cls, config: EmbeddedS3Config | ExternalS3Config) -> ObjectStore:
        if isinstance(config, EmbeddedS3Config):
            credentials = load_or_create_credentials(config.data_dir)
            client = Minio(
                f"127.0.0.1:{config.port}",
                access_key=credentials.access_key,
                secret_key=credentials.secret_key,
                secure=False,
                http_client=_http_client(),
            )
        else:
            client = Minio(
                config.endpoint,
                access_key=config.access_key,
                secret_key=config.secret_key.get_secret_value(),
                secure=config.secure,
                region=config.region,
                http_client=_http_client(),
            )
        return cls(client, config.bucket)

    def ensure_bucket(self) -> None:
        if not self.client.bucket_exists(self.bucket):
            self.client.make_bucket(self.bucket)

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

    def open(self, key: str, chunk_size: int = 256 * 1024) -> Iterator[bytes]:
        """The object's bytes in chunks. The request is made now, so a missing object or an
        unreachable server raises here, before the caller has promised anything."""
        response = self.client.get_object(self.bucket, key)

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
        return self.client.presigned_get_object(
            self.bucket, key, expires=timedelta(seconds=expires_s)
        )
