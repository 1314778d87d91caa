"""Configuration owned by the storage stage: object storage, the index, clip windows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from common.config import StrictModel

BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"


class _S3Links(StrictModel):
    public_url: str | None = Field(
        None,
        description="where clients outside reach this S3 server (http(s)://host[:port]), for "
        "the presigned links of webhooks and clip redirects; default: the address used here",
    )

    @field_validator("public_url")
    @classmethod
    def _origin_only(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
            raise ValueError("expected http(s)://host[:port], without a path")
        if parts.username or parts.password or parts.query:
            raise ValueError("expected http(s)://host[:port], without credentials or a query")
        return url.rstrip("/")


class EmbeddedS3Config(_S3Links):
    """SeaweedFS `weed mini` started and stopped by the supervisor, data under `data_dir`."""

    type: Literal["embedded"] = "embedded"
    data_dir: Path = Path("data/s3")
    port: int = Field(8333, ge=1, le=65535)
    bucket: str = Field("xueliang", pattern=BUCKET_PATTERN)


class ExternalS3Config(_S3Links):
    """Any S3 server (MinIO in production) reached through the minio SDK."""

    type: Literal["s3"] = "s3"
    endpoint: str = Field(description="host:port, no scheme")
    bucket: str = Field(pattern=BUCKET_PATTERN)
    access_key: str
    secret_key: SecretStr
    secure: bool = True
    region: str | None = None
    ca_file: Path | None = Field(
        None, description="PEM bundle of the CA that signed the server's certificate"
    )
    verify_tls: bool = Field(True, description="false only for a test server")


S3Config = Annotated[EmbeddedS3Config | ExternalS3Config, Field(discriminator="type")]


class ClipConfig(StrictModel):
    pre_roll_s: float = Field(5.0, ge=0)
    post_roll_s: float = Field(5.0, ge=0)
    journal: bool = Field(
        True,
        description="keep the packet rings on the node's disk too (GOP by GOP, as much as the "
        "rings hold), so that a worker taking over after a crash cuts the clips of the events "
        "the dead one was recording",
    )


class IndexConfig(StrictModel):
    """The event index database: SQLite (the default, a file in `data_dir`) or PostgreSQL
    for several nodes (`postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE`; plain
    `postgresql://` means the same). Its schema is migrated to the program's on start.

    Example:
        >>> IndexConfig(url="postgresql://xl:pw@db.example.org/xueliang").url.split("@")[1]
        'db.example.org/xueliang'
        >>> try:
        ...     IndexConfig(url="mysql://db/x")
        ... except ValueError as exc:
        ...     print(exc.errors()[0]["msg"])
        Value error, expected sqlite:///PATH or postgresql+psycopg://USER:PASS@HOST:PORT/DB
    """

    url: str = Field("sqlite:///data/xueliang.db", description="SQLAlchemy database URL")
    key_file: Path | None = Field(
        None,
        description="the keys that seal the credentials of cameras added over the API (one "
        "Fernet key a line, the first sealing; made on the first start if missing; default "
        "data_dir/index.key): every node needs the same file, and it does not belong in the "
        "database's backups",
    )

    @field_validator("url")
    @classmethod
    def _supported_database(cls, url: str) -> str:
        backend = url.split("://", 1)[0].split("+", 1)[0] if "://" in url else ""
        if backend not in ("sqlite", "postgresql"):
            # Never the value itself in the message: it may hold a password.
            raise ValueError(
                "expected sqlite:///PATH or postgresql+psycopg://USER:PASS@HOST:PORT/DB"
            )
        return url


class SpoolConfig(StrictModel):
    """The local spool every clip, snapshot and recording segment passes through on its way
    to S3 (under `data_dir/spool`), and its uploader.

    When the spool holds `max_bytes` (shared evenly by the worker processes), new recording
    segments are refused and the oldest recording segments are evicted to make room for event
    clips and snapshots; these are still taken beyond `max_bytes`, as long as the disk keeps
    `min_free_bytes` free, and refused only then. Either way a `storage_full` report goes out.

    Example:
        >>> SpoolConfig(max_bytes=2 * 1024**3).part_size // 1024**2  # MiB: one PUT up to this
        16
    """

    max_bytes: int = Field(10 * 1024**3, ge=1)
    min_free_bytes: int = Field(512 * 1024**2, ge=0)
    part_size: int = Field(
        16 * 1024**2, ge=5 * 1024**2, description="one PUT up to this size, multipart beyond"
    )
    retry_min_s: float = Field(0.5, gt=0)
    retry_max_s: float = Field(30.0, gt=0)
    verify_etag: bool = Field(
        True, description="compare the server's ETag with the local MD5; off for SSE-KMS buckets"
    )
    drain_s: float = Field(10.0, ge=0, description="how long a stopping worker keeps uploading")


class RecordingConfig(StrictModel):
    """A camera's continuous recording: its record stream, stream-copied into segments."""

    enabled: bool = False
    segment_s: float = Field(60.0, ge=2, le=3600, description="about this long each (whole GOPs)")


class EvidenceConfig(StrictModel):
    """Evidence integrity: with `worm`, the bucket is made with object lock and every event
    clip and snapshot is retained by the server for `retain_days` (`mode` COMPLIANCE: not even
    an administrator can shorten it); the periodic audit re-reads each clip about every
    `recheck_days`."""

    worm: bool = False
    mode: Literal["COMPLIANCE", "GOVERNANCE"] = "COMPLIANCE"
    retain_days: int = Field(30, ge=1, le=36500)
    audit_every_s: float = Field(600.0, gt=0, description="how often an audit round runs")
    recheck_days: float = Field(7.0, gt=0)
