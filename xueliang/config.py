"""The whole configuration: each stage's own section, composed and loaded from YAML."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import Field, ValidationError, model_validator

from analytics.config import AnalyticsConfig, DetectorConfig, SsdOnnxDetectorConfig
from api.config import ApiConfig
from common.config import StrictModel
from gb28181.config import Gb28181Config
from ingest.config import IngestConfig
from storage.config import (
    ClipConfig,
    EmbeddedS3Config,
    EvidenceConfig,
    IndexConfig,
    S3Config,
    SpoolConfig,
)
from storage.database.cameras import CameraConfig
from storage.database.sealing import CredentialSealer
from storage.media.objects import ObjectStore
from storage.media.retention import RetentionConfig
from xueliang.logs import LogsConfig


class Config(StrictModel):
    cameras: list[CameraConfig] = Field(
        default_factory=list, description="more may be added over the API (installers)"
    )
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    detector: DetectorConfig = Field(default_factory=SsdOnnxDetectorConfig)
    analytics: AnalyticsConfig = Field(default_factory=AnalyticsConfig)
    clips: ClipConfig = Field(default_factory=ClipConfig)
    storage: S3Config = Field(default_factory=EmbeddedS3Config)
    spool: SpoolConfig = Field(default_factory=SpoolConfig)
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    gb28181: Gb28181Config = Field(default_factory=Gb28181Config)
    logs: LogsConfig = Field(default_factory=LogsConfig)
    data_dir: Path = Path("data")
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, description="worker processes"
    )

    @model_validator(mode="after")
    def _check_whole(self) -> Config:
        seen: set[str] = set()
        for camera in self.cameras:
            if camera.id in seen:
                raise ValueError(f"camera id {camera.id!r} is used twice")
            seen.add(camera.id)
        events = self.analytics.events
        # A clip is cut once the event has ended (end_after_s after its last sighting) and its
        # post-roll has passed; the ring must still hold its pre-roll then.
        longest = (
            self.clips.pre_roll_s
            + events.max_duration_s
            + max(self.clips.post_roll_s, events.end_after_s)
        )
        if self.ingest.ring_s < longest:
            raise ValueError(
                f"ingest.ring_s ({self.ingest.ring_s:g}) must cover the longest clip: pre_roll "
                f"+ max_duration + max(post_roll, end_after) = {longest:g} s"
            )
        for camera in self.cameras:
            # A segment is cut once the GOP after it has begun: the ring must still hold it.
            if camera.recording.enabled and self.ingest.ring_s < camera.recording.segment_s + 20:
                raise ValueError(
                    f"ingest.ring_s ({self.ingest.ring_s:g}) must exceed camera "
                    f"{camera.id!r}'s recording.segment_s ({camera.recording.segment_s:g}) by "
                    "20 s (a GOP and the time to cut it)"
                )
        return self

    def sealer(self) -> CredentialSealer:
        """The sealer of the index's camera credentials (its key file made if missing)."""
        return CredentialSealer.from_file(self.index.key_file or self.data_dir / "index.key")

    def service_endpoints(self) -> list[tuple[str, int]]:
        """(host, port) of the platform's own services, which keys other than admins' may not
        make it connect to: the API, object storage, the database, the MQTT broker."""
        endpoints = [(self.api.host, self.api.port)]
        storage = self.storage
        if storage.type == "embedded":
            endpoints.append(("127.0.0.1", storage.port))
        else:
            s3 = urlsplit(f"//{storage.endpoint}")
            endpoints.append((s3.hostname or "", s3.port or (443 if storage.secure else 80)))
        database = self.index.url if self.index.url.startswith("postgresql") else None
        for url in filter(None, (storage.public_url, database)):
            link = urlsplit(url)
            default_port = {"http": 80, "https": 443}.get(link.scheme, 5432)
            if link.hostname:
                endpoints.append((link.hostname, link.port or default_port))
        if self.api.mqtt.enabled:
            endpoints.append((self.api.mqtt.host, self.api.mqtt.port))
        return endpoints

    def object_store(self) -> ObjectStore:
        """The configured bucket, with the evidence settings when WORM is on."""
        return ObjectStore.from_config(self.storage, self.evidence if self.evidence.worm else None)


class ConfigError(Exception):
    """A configuration that cannot be used; `problems` lists each as 'key.path: reason'."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def _format_errors(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"]) or "(top level)"
        reason = item["msg"]
        if item["type"] == "extra_forbidden":
            reason = "unknown key"
        elif reason.startswith("Value error, "):
            reason = reason.removeprefix("Value error, ")
        problems.append(f"{path}: {reason}")  # never the input value: it may hold a password
    return problems


def _resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative file paths in the YAML are taken relative to the YAML file's folder."""

    def resolve(section: Any, key: str) -> None:
        if isinstance(section, dict) and isinstance(section.get(key), str):
            path = Path(section[key])
            section[key] = str(path if path.is_absolute() else base / path)

    resolve(raw, "data_dir")
    resolve(raw.get("detector"), "model")
    resolve(raw.get("storage"), "data_dir")
    resolve(raw.get("index"), "key_file")
    index = raw.get("index")
    if isinstance(index, dict) and isinstance(index.get("url"), str):
        url = index["url"]
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            index["url"] = "sqlite:///" + str(base / url.removeprefix("sqlite:///"))
    return raw


def load_config(path: Path) -> Config:
    """Read and validate a YAML config; raise ConfigError naming every problem."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), ["cannot read: not UTF-8 text"]) from None
    except yaml.YAMLError as exc:
        # Only where and what: the offending line itself may hold a password.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(str(path), [f"not valid YAML{where}: {problem}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(str(path), ["(top level): expected a mapping of sections"])
    for key in ("data_dir",):
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(str(path), [f"{key}: expected a path (text)"])
    for section, key in (("storage", "data_dir"), ("detector", "model"), ("index", "url")):
        value = raw.get(section)
        if isinstance(value, dict) and key in value and not isinstance(value[key], str):
            raise ConfigError(str(path), [f"{section}.{key}: expected text"])
    base = path.resolve().parent
    raw = _resolve_paths(raw, base)
    raw.setdefault("data_dir", str(base / "data"))
    storage = raw.setdefault("storage", {"type": "embedded"})
    if isinstance(storage, dict) and storage.get("type", "embedded") == "embedded":
        storage.setdefault("data_dir", str(Path(raw["data_dir"]) / "s3"))
    index = raw.setdefault("index", {})
    if isinstance(index, dict):
        index.setdefault("url", f"sqlite:///{Path(raw['data_dir']) / 'xueliang.db'}")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(str(path), _format_errors(exc)) from None
