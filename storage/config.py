"""Configuration owned by the storage stage: object storage, the index, clip windows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr

from ingest.config import StrictModel

BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"


class EmbeddedS3Config(StrictModel):
    """SeaweedFS `weed mini` started and stopped by the supervisor, data under `data_dir`."""

    type: Literal["embedded"] = "embedded"
    data_dir: Path = Path("data/s3")
    port: int = Field(8333, ge=1, le=65535)
    bucket: str = Field("xueliang", pattern=BUCKET_PATTERN)


class ExternalS3Config(StrictModel):
    """Any S3 server (MinIO in production) reached through the minio SDK."""

    type: Literal["s3"] = "s3"
    endpoint: str = Field(description="host:port, no scheme")
    bucket: str = Field(pattern=BUCKET_PATTERN)
    access_key: str
    secret_key: SecretStr
    secure: bool = True
    region: str | None = None


S3Config = Annotated[EmbeddedS3Config | ExternalS3Config, Field(discriminator="type")]


class ClipConfig(StrictModel):
    pre_roll_s: float = Field(5.0, ge=0)
    post_roll_s: float = Field(5.0, ge=0)


class IndexConfig(StrictModel):
    url: str = Field("sqlite:///data/xueliang.db", description="SQLAlchemy database URL")
