"""Draft a migration for the models' changes:
`python -m storage.database.migrations revision "message"`.

Alembic compares the models (`MODEL_MODULES`) with a scratch SQLite database migrated to
head and writes versions/rNNNN_message.py. Read the draft before committing it: autogenerate
misses renames and server defaults, and its types must suit PostgreSQL too.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from alembic import command

from storage.database.migrations import alembic_config, script_directory


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m storage.database.migrations")
    commands = parser.add_subparsers(dest="command", required=True)
    revision = commands.add_parser("revision", help="draft a migration from the models")
    revision.add_argument("message")
    arguments = parser.parse_args()

    from storage.database.engine import Database

    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'head.db'}"
        Database.connect(url).close()
        config = alembic_config()
        config.set_main_option("sqlalchemy.url", url)
        config.set_main_option("file_template", "r%%(rev)s_%%(slug)s")
        heads = script_directory().get_heads()
        number = max(int(head) for head in heads) + 1 if heads else 1
        command.revision(config, arguments.message, autogenerate=True, rev_id=f"{number:04d}")


if __name__ == "__main__":
    main()
