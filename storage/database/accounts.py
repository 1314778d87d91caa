"""Who may use the API: keys with a role and a set of sites, and the sites themselves."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

from sqlalchemy import JSON, Boolean, Float, String, select
from sqlalchemy.orm import Mapped, mapped_column

from storage.database.engine import Base, Database, UTCDateTime, utcnow

Role = Literal["admin", "operator", "installer", "shop"]
ROLES: tuple[Role, ...] = get_args(Role)
ALL_SITES_ROLES: frozenset[Role] = frozenset({"admin", "operator"})  # may be given every site
KEY_PREFIX = "xl"


class ApiKeyRow(Base):
    """An API key: only the SHA-256 of its secret is kept (the secret is 32 random bytes, so a
    plain hash is as good as a slow one), shown once when it is made.

    `sites` is the list of site ids the key may see; `all_sites` (admin and operator keys
    only) gives every site, present and future."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    sites: Mapped[list[str]] = mapped_column(JSON, default=list)
    all_sites: Mapped[bool] = mapped_column(Boolean, default=False)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SiteRow(Base):
    """A place with cameras: a shop, a residential compound, a public square."""

    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    address: Mapped[str] = mapped_column(String(256), default="")
    grid_id: Mapped[str] = mapped_column(String(64), default="")  # the city's grid cell
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    # The private networks its cameras live on (CIDR): where keys of the site may probe and
    # add cameras, and send webhooks (common/egress.py); set by admins only.
    networks: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class SessionRow(Base):
    """A console login: the SHA-256 of a random cookie token, the key it was opened with."""

    __tablename__ = "sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a key's id, name, role and the sites it may see (None: all of them).

    Example:
        >>> shop = Principal("k1", "shop-7 panel", "shop", frozenset({"shop-7"}))
        >>> shop.sees("shop-7"), shop.sees("bank-2"), shop.sorted_sites
        (True, False, ['shop-7'])
    """

    key_id: str
    name: str
    role: Role
    sites: frozenset[str] | None

    def sees(self, site: str) -> bool:
        return self.sites is None or site in self.sites

    def visible(self, sites: Sequence[str]) -> list[str]:
        """Those of `sites` this key may see."""
        return [site for site in sites if self.sees(site)]

    @property
    def sorted_sites(self) -> list[str] | None:
        """The key's sites in order, as queries and answers take them (None: all of them)."""
        return sorted(self.sites) if self.sites is not None else None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeys:
    """Makes, checks and revokes API keys. A key reads `xl_<id>_<secret>`: the id finds its row,
    the secret's hash is compared in constant time.

    Example:
        >>> keys = ApiKeys(Database.connect("sqlite://"))
        >>> row, key = keys.create("night desk", "operator", [], all_sites=True, by="setup")
        >>> keys.authenticate(key).role, keys.authenticate(key + "x")
        ('operator', None)
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    def create(
        self, name: str, role: Role, sites: Sequence[str], all_sites: bool, by: str
    ) -> tuple[ApiKeyRow, str]:
        """A new key and its plaintext (which is not kept). Raises ValueError for a role and
        sites that do not go together."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
        if all_sites and role not in ALL_SITES_ROLES:
            raise ValueError(f"a {role} key is limited to its sites: all_sites is not allowed")
        if not all_sites and not sites:
            raise ValueError("a key needs at least one site, or all_sites (admin, operator)")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        row = ApiKeyRow(
            id=key_id,
            name=name,
            role=role,
            sites=sorted(set(sites)),
            all_sites=all_sites,
            secret_sha256=_digest(secret),
            created_by=by,
        )
        with self.database.sessions.begin() as session:
            session.add(row)
        return row, f"{KEY_PREFIX}_{key_id}_{secret}"

    def authenticate(self, presented: str) -> Principal | None:
        """The principal of a valid, unrevoked key; None for anything else."""
        prefix, _, rest = presented.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != KEY_PREFIX or not key_id or not secret:
            return None
        with self.database.sessions() as session:
            row = session.get(ApiKeyRow, key_id)
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.secret_sha256, _digest(secret)):
            return None
        return principal_of(row)

    def open_session(self, principal: Principal, lasts: timedelta) -> str:
        """A session token for the console's cookie (kept only as a hash), valid for `lasts`
        or until its key is revoked."""
        token = secrets.token_urlsafe(32)
        row = SessionRow(
            token_sha256=_digest(token), key_id=principal.key_id, expires_at=utcnow() + lasts
        )
        with self.database.sessions.begin() as session:
            session.add(row)
        return token

    def session_principal(self, token: str) -> Principal | None:
        """The principal of an open session whose key is still valid; None for anything else."""
        with self.database.sessions() as session:
            found = session.get(SessionRow, _digest(token))
            key = session.get(ApiKeyRow, found.key_id) if found is not None else None
        if found is None or key is None or key.revoked_at is not None:
            return None
        if found.expires_at <= utcnow():
            return None
        return principal_of(key)

    def close_session(self, token: str) -> None:
        with self.database.sessions.begin() as session:
            found = session.get(SessionRow, _digest(token))
            if found is not None:
                session.delete(found)

    def list(self) -> list[ApiKeyRow]:
        with self.database.sessions() as session:
            return list(session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at)))

    def revoke(self, key_id: str) -> bool:
        """Revoke a key at once; False if there is no such key."""
        with self.database.sessions.begin() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                return False
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return True


class Sites:
    """The sites admins make, replace and remove.

    Example:
        >>> sites = Sites(Database.connect("sqlite://"))
        >>> sites.put(SiteRow(id="shop-7", name="Shop 7")).timezone
        'Asia/Shanghai'
        >>> sites.put(SiteRow(id="bank-2", name="Bank 2", grid_id="g2")).grid_id
        'g2'
        >>> [site.id for site in sites.all()], sites.get("park-1")
        (['bank-2', 'shop-7'], None)
        >>> sites.delete("shop-7"), sites.delete("shop-7")
        (True, False)
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    def all(self) -> list[SiteRow]:
        """Every site, by id."""
        with self.database.sessions() as session:
            return list(session.scalars(select(SiteRow).order_by(SiteRow.id)))

    def get(self, site_id: str) -> SiteRow | None:
        with self.database.sessions() as session:
            return session.get(SiteRow, site_id)

    def put(self, site: SiteRow) -> SiteRow:
        """Create `site`, or replace the site of its id; the row as stored."""
        with self.database.sessions.begin() as session:
            return session.merge(site)

    def delete(self, site_id: str) -> bool:
        """Remove a site; False if there is no such site."""
        with self.database.sessions.begin() as session:
            row = session.get(SiteRow, site_id)
            if row is None:
                return False
            session.delete(row)
            return True


def principal_of(row: ApiKeyRow) -> Principal:
    role: Role = row.role  # type: ignore[assignment]  # written from Role only
    return Principal(row.id, row.name, role, None if row.all_sites else frozenset(row.sites))
