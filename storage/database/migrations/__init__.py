"""Alembic migrations of the shared database, run to head by `Database.connect`.

Alembic is configured here in code (no alembic.ini). Every module that defines tables on
`storage.database.engine.Base` must be listed in `MODEL_MODULES`: `env.py` (autogenerate) and
the drift test (tests/test_index.py) import exactly these, so a model changed without a
migration fails the test. To write a migration after changing a model, let Alembic draft it
against a scratch database at head, then read and edit the draft:

    .venv/bin/python -m storage.database.migrations revision "add the retention columns"
"""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData

HERE = Path(__file__).resolve().parent

# The modules whose tables live in the database; add yours here.
MODEL_MODULES = tuple(
    f"storage.database.{name}"
    for name in (
        "index",
        "camera_health",
        "leases",
        "cameras",
        "webhooks",
        "accounts",
        "workflow",
        "alarms",
        "recordings",
        "custody",
        "limits",
        "devices",
        "media_sessions",
    )
)

# The schema that `Base.metadata.create_all` made before there were migrations: a database
# with these tables and no alembic_version is stamped with it (see storage.database.engine.migrate).
BASELINE = "0001"


def target_metadata() -> MetaData:
    """The metadata of every model module, i.e. the schema the code expects.

    Example:
        >>> {"events", "recordings", "custody_log"} <= set(target_metadata().tables)
        True
    """
    for name in MODEL_MODULES:
        importlib.import_module(name)
    from storage.database.engine import Base

    return Base.metadata


def alembic_config() -> Config:
    """An Alembic config pointing at this folder (for `alembic.command` calls)."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("path_separator", "os")  # the default to come; silences a warning
    return config


_script: ScriptDirectory | None = None


def script_directory() -> ScriptDirectory:
    """The migration scripts, read once per process (every `EventIndex.connect` checks them)."""
    global _script
    if _script is None:
        _script = ScriptDirectory.from_config(alembic_config())
    return _script
