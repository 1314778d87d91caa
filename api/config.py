"""Configuration owned by the API stage."""

from __future__ import annotations

from pydantic import Field

from ingest.config import StrictModel


class ApiConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    page_limit: int = Field(200, ge=1, description="largest page of events one request gets")
    export_max_s: float = Field(
        3600.0, gt=0, description="longest recording one request exports (a temporary file)"
    )
    rate_per_s: float = Field(20.0, gt=0, description="requests per second per key, on average")
    burst: int = Field(60, ge=1, description="requests per key at once beyond the rate")
    max_body_bytes: int = Field(1024**2, ge=1024, description="largest request body")
    webhook_retry_min_s: float = Field(2.0, gt=0, description="first retry of a failed delivery")
    webhook_retry_max_s: float = Field(600.0, gt=0, description="longest wait between retries")
