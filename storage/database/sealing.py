"""Camera credentials kept in the index are sealed (Fernet: AES-128-CBC with HMAC-SHA256)
under keys kept in a file apart from the index, so a copy of the database (a backup, a dump,
a stolen disk of the database server) does not give away the cameras' passwords."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

SEALED = "sealed:"  # stored values that start so are sealed; others are from before sealing


class SealError(ValueError):
    """A stored credential that none of the keys opens."""


class CredentialSealer:
    """Seals and opens credentials. The first key seals; every key opens (rotation: put a
    new key first in the file, keep the old ones after it until everything is sealed again).

    Example:
        >>> sealer = CredentialSealer([Fernet.generate_key()])
        >>> stored = sealer.seal("Pa55-w0rd")
        >>> stored.startswith("sealed:"), "Pa55" in stored, sealer.open(stored)
        (True, False, 'Pa55-w0rd')
        >>> CredentialSealer([Fernet.generate_key()]).open(stored)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        storage.database.sealing.SealError: a stored credential does not open with this node's...
    """

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._first = Fernet(keys[0])
        self._fernet = MultiFernet([self._first, *(Fernet(key) for key in keys[1:])])

    @classmethod
    def from_file(cls, path: Path) -> CredentialSealer:
        """The keys of `path`, one a line; made with a new key (readable by its owner only)
        if there is no such file. Of processes making it at once, one file wins for all."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False) as draft:
                os.chmod(draft.name, 0o600)
                draft.write(Fernet.generate_key() + b"\n")
                draft.flush()
                os.fsync(draft.fileno())
            try:
                with contextlib.suppress(FileExistsError):
                    os.link(draft.name, path)  # atomic, and never over another's key
            finally:
                os.unlink(draft.name)
        keys = [line.strip() for line in path.read_bytes().splitlines() if line.strip()]
        try:
            return cls(keys)
        except ValueError:
            raise ValueError(f"{path} holds no valid key (one Fernet key a line)") from None

    def seal(self, text: str) -> str:
        return SEALED + self._fernet.encrypt(text.encode()).decode("ascii")

    def seal_or_none(self, text: str | None) -> str | None:
        return None if text is None else self.seal(text)

    def open(self, stored: str) -> str:
        """The credential `stored` holds; a value from before sealing is taken as it is."""
        if not is_sealed(stored):
            return stored
        try:
            return self._fernet.decrypt(_token(stored)).decode()
        except InvalidToken:
            raise SealError(
                "a stored credential does not open with this node's keys: every node needs "
                "the same key file"
            ) from None

    def reseal(self, stored: str) -> str:
        """`stored` sealed under the first key: as it is if it already is; plain values
        sealed, values of older keys sealed again."""
        if is_sealed(stored):
            with contextlib.suppress(InvalidToken):
                self._first.decrypt(_token(stored))
                return stored
        return self.seal(self.open(stored))


def is_sealed(stored: str) -> bool:
    return stored.startswith(SEALED)


def _token(stored: str) -> bytes:
    return stored.removeprefix(SEALED).encode("ascii")
