"""The packages follow the data flow: a module imports only from the stages before its own
(common -> ingest -> analytics -> storage -> api and the other outward-facing servers, wired by
xueliang), and storage's media wing may use its database wing, never the reverse. Checked on
the source, so an import against the flow fails here before anyone reads it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Each layer, and the layers it may import from besides itself.
ALLOWED: dict[str, set[str]] = {
    "common": set(),
    "ingest": {"common"},
    "analytics": {"common", "ingest"},
    "storage": {"common", "ingest", "analytics"},  # the stage's config, both wings use it
    "storage.database": {"common", "ingest", "analytics", "storage"},
    "storage.media": {"common", "ingest", "analytics", "storage", "storage.database"},
    "api": {"common", "ingest", "analytics", "storage", "storage.database", "storage.media"},
    "gb28181": {"common", "ingest", "analytics", "storage", "storage.database", "storage.media"},
    "xueliang": {
        "common", "ingest", "analytics", "storage", "storage.database", "storage.media", "api",
        "gb28181",
    },
}  # fmt: skip


def layer_of(module: str) -> str | None:
    """The layer a dotted module name belongs to (the longest match), None if not ours.

    Example:
        >>> layer_of("storage.media.spool"), layer_of("storage.config"), layer_of("numpy")
        ('storage.media', 'storage', None)
    """
    matches = [name for name in ALLOWED if module == name or module.startswith(name + ".")]
    return max(matches, key=len) if matches else None


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, including those inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


def sources() -> list[Path]:
    return sorted(
        path
        for package in ("common", "ingest", "analytics", "storage", "api", "gb28181", "xueliang")
        for path in (ROOT / package).rglob("*.py")
    )


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_module_imports_only_from_the_stages_before_it(path: Path) -> None:
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    own = layer_of(module)
    assert own is not None
    against = [
        f"line {line}: {imported}"
        for line, imported in imports_of(path)
        if (layer := layer_of(imported)) is not None and layer != own and layer not in ALLOWED[own]
    ]
    assert not against, f"{module} ({own}) imports against the data flow: {against}"


def test_the_check_catches_an_import_against_the_flow(tmp_path: Path) -> None:
    source = tmp_path / "wrong.py"
    source.write_text("def f():\n    from storage.media.spool import Spool\n")
    assert imports_of(source) == [(2, "storage.media.spool")]
    assert layer_of("storage.media.spool") not in ALLOWED["storage.database"]
