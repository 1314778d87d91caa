"""`xueliang` command line: run, demo, check-config, and the child roles the supervisor starts."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from storage.config import ExternalS3Config
from storage.database.accounts import ROLES
from xueliang.config import Config, ConfigError, load_config
from xueliang.logs import register_secrets, setup_logging

if TYPE_CHECKING:
    from storage.media.evidence import Evidence

log = logging.getLogger("xueliang")
ALARM_CHECK_S = 15.0
ALARM_CLIP_WAIT_S = 300.0  # an alarm clip no worker took this long after the alarm: given up
ORPHANED_CLIPS_S = 10.0  # how often clips of events whose worker died are looked for in recordings


def _load(path: Path) -> Config:
    config = load_config(path)
    register_secrets(
        *(c.password.get_secret_value() for c in config.cameras if c.password is not None)
    )
    if isinstance(config.storage, ExternalS3Config):
        register_secrets(config.storage.secret_key.get_secret_value())
    if config.api.mqtt.password is not None:
        register_secrets(config.api.mqtt.password.get_secret_value())
    return config


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"{args.config}: invalid configuration", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    try:
        from analytics.detectors import create_detector

        create_detector(config.detector)
    except Exception as exc:
        print(f"{args.config}: invalid configuration", file=sys.stderr)
        print(f"  detector.model: cannot be loaded: {type(exc).__name__}", file=sys.stderr)
        return 2
    print(f"{args.config}: OK ({len(config.cameras)} camera(s))")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from xueliang.supervisor import Supervisor

    setup_logging("supervisor")
    config = _load(args.config)
    setup_logging("supervisor", config.logs.format)
    api = f"http://{config.api.host}:{config.api.port}"
    return Supervisor(config, args.config.resolve()).run(
        on_ready=[f"API: {api}/api/events  docs: {api}/docs"]
    )


def cmd_worker(args: argparse.Namespace) -> int:
    from storage.database.leases import holder_id
    from xueliang.worker import Worker

    worker_id = holder_id()
    setup_logging(f"worker {worker_id}")
    config = _load(args.config)
    setup_logging(f"worker {worker_id}", config.logs.format)
    Worker(config, worker_id).run(_stop_on_signals())
    return 0


def cmd_sip(args: argparse.Namespace) -> int:
    import asyncio

    from gb28181.service import Signalling, serve
    from storage.database.devices import GbDevices
    from storage.database.index import EventIndex
    from storage.database.media_sessions import GbMediaSessions

    setup_logging("sip")
    config = _load(args.config)
    setup_logging("sip", config.logs.format)
    index = EventIndex.connect(config.index.url)
    signalling = Signalling(
        config.gb28181, GbDevices(index, config.sealer()), GbMediaSessions(index)
    )

    async def main() -> None:
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await serve(config.gb28181, signalling, stop)

    asyncio.run(main())
    return 0


def evidence_round(evidence: Evidence, recheck: timedelta) -> None:
    """One round of the evidence chore: re-hash media not checked lately, put holds on media
    uploaded since, anchor the custody log's head, and check the whole log (errors logged)."""
    evidence.audit(recheck)
    evidence.reconcile_holds()
    evidence.anchor()
    evidence.check_log()


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from common.egress import service_addresses
    from common.periodic import Periodic
    from storage.database.alarms import AlarmPanels, expire_alarm_clips
    from storage.database.cameras import ApiCameras
    from storage.database.index import EventIndex
    from storage.database.leases import ChoreTurns, holder_id
    from storage.media.event_clips import rebuild_from_recordings
    from storage.media.evidence import Evidence
    from storage.media.retention import RetentionSweeper

    setup_logging("api")
    config = _load(args.config)
    setup_logging("api", config.logs.format)
    index, store = EventIndex.connect(config.index.url), config.object_store()
    sealer = config.sealer()
    ApiCameras(index, sealer).reseal()  # credentials stored before sealing, or of an older key
    # API processes keep the evidence too (audits and retention), one of them per round.
    evidence = Evidence(index, store)
    recheck = timedelta(days=config.evidence.recheck_days)
    sweeper = RetentionSweeper(index, store, evidence, config.retention)
    turns = ChoreTurns(index, f"api-{holder_id()}")
    scratch = config.data_dir / "work" / "api"

    def rebuild_orphans() -> None:
        rebuild_from_recordings(index, store, config.clips, scratch)

    audit_s, sweep_s = config.evidence.audit_every_s, config.retention.sweep_every_s
    chores = [
        Periodic(
            "evidence",
            audit_s,
            lambda: turns.run("evidence", audit_s, lambda: evidence_round(evidence, recheck)),
        ),
        Periodic("retention", sweep_s, lambda: turns.run("retention", sweep_s, sweeper.sweep)),
        Periodic(
            "orphaned clips",
            ORPHANED_CLIPS_S,
            lambda: turns.run("orphaned clips", ORPHANED_CLIPS_S, rebuild_orphans),
        ),
        Periodic(
            "alarm clips",
            ALARM_CHECK_S,
            lambda: expire_alarm_clips(AlarmPanels(index), index, waited_s=ALARM_CLIP_WAIT_S),
        ),
    ]
    stale_s = 3 * config.ingest.heartbeat_s
    services = service_addresses(config.service_endpoints())
    app = create_app(index, store, config.cameras, config.api, stale_s, sealer, chores, services)
    uvicorn.run(app, host=config.api.host, port=config.api.port, log_config=None)
    return 0


def cmd_create_key(args: argparse.Namespace) -> int:
    """Make an API key (the first admin key, before there is one to make others with) and
    print it: it is shown this once and kept only as a hash."""
    from storage.database.accounts import ApiKeys
    from storage.database.index import EventIndex

    config = load_config(args.config)
    keys = ApiKeys(EventIndex.connect(config.index.url))
    try:
        row, key = keys.create(args.name, args.role, args.site, args.all_sites, by="command line")
    except ValueError as exc:
        print(f"xueliang: {exc}", file=sys.stderr)
        return 2
    scope = "all sites" if row.all_sites else ", ".join(row.sites)
    print(f"{row.role} key {row.id} ({row.name}; {scope}); shown once:", file=sys.stderr)
    print(key)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from xueliang.demo import run_demo

    setup_logging("supervisor")
    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xueliang", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def with_config(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("config", type=Path, help="YAML configuration file")
        return sub

    with_config("run", "run the pipeline (S3 when embedded, API, worker)").set_defaults(
        handler=cmd_run
    )
    with_config("check-config", "validate a configuration file").set_defaults(
        handler=cmd_check_config
    )
    with_config("worker", "(started by `run`) a worker process").set_defaults(handler=cmd_worker)
    with_config("api", "(started by `run`) the API server").set_defaults(handler=cmd_api)
    with_config("sip", "(started by `run`) the GB/T 28181 signalling service").set_defaults(
        handler=cmd_sip
    )
    create_key = with_config("create-key", "make an API key and print it (shown once)")
    create_key.add_argument("--name", required=True, help="who holds it, as the logs name them")
    create_key.add_argument("--role", required=True, choices=ROLES)
    create_key.add_argument("--site", action="append", default=[], help="a site (repeatable)")
    create_key.add_argument(
        "--all-sites", action="store_true", help="every site (admin and operator keys)"
    )
    create_key.set_defaults(handler=cmd_create_key)
    demo = commands.add_parser(
        "demo", help="run everything on the embedded default with a demo camera"
    )
    demo.add_argument("--data-dir", type=Path, default=None, help="default: data/ of the checkout")
    demo.add_argument("--api-port", type=int, default=8080)
    demo.add_argument("--rtsp-port", type=int, default=8554)
    demo.add_argument("--s3-port", type=int, default=8333)
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except ConfigError as exc:
        print(f"xueliang: {exc}", file=sys.stderr)
        return 2
    return code
