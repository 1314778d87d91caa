"""Keys and sites: what admins manage, and who a key is."""

# No `from __future__ import annotations`: FastAPI must see the routes' Annotated[..., Depends]
# metadata, which names dependencies local to `routes`, at definition time.

import secrets
from datetime import timedelta
from typing import Annotated

import urllib3
from fastapi import APIRouter, HTTPException, Path, Request, Response
from minio.error import S3Error

from api.auth import CSRF_COOKIE, SESSION_COOKIE
from api.context import ApiContext
from api.errors import ERROR_RESPONSES
from api.models import CustodyCheckOut, KeyCreated, KeyIn, KeyOut, LoginIn, Me, SiteIn, SiteOut
from common.config import IDENTIFIER
from storage.database.accounts import Principal, SiteRow

SiteId = Annotated[str, Path(pattern=IDENTIFIER)]


def routes(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["admin"], responses=ERROR_RESPONSES)
    anyone = ctx.auth.allow("admin", "operator", "installer", "shop")
    admin = ctx.auth.allow("admin")

    @router.get("/me")
    def me(who: Annotated[Principal, anyone]) -> Me:
        """The key's name, role and sites (the console shows only what these allow)."""
        return Me(key_id=who.key_id, name=who.name, role=who.role, sites=who.sorted_sites)

    @router.post("/session")
    def log_in(request: Request, response: Response, login: LoginIn) -> Me:
        """The console's login: a key, checked, opens a session kept in an HttpOnly,
        SameSite=Strict cookie (the key itself is not kept by the browser); a second cookie
        holds the CSRF token the console sends back in `X-CSRF-Token` with each change."""
        who = ctx.auth.authenticate_key(login.key)
        token = ctx.keys.open_session(who, timedelta(hours=ctx.settings.session_hours))
        secure = request.url.scheme == "https"
        age = int(ctx.settings.session_hours * 3600)
        response.set_cookie(
            SESSION_COOKIE, token, max_age=age, httponly=True, samesite="strict", secure=secure
        )
        response.set_cookie(
            CSRF_COOKIE, secrets.token_urlsafe(16), max_age=age, samesite="strict", secure=secure
        )
        return me(who)

    @router.delete("/session", status_code=204)
    def log_out(request: Request, response: Response, who: Annotated[Principal, anyone]) -> None:
        """End the console's session (its cookie no longer lets anyone in)."""
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            ctx.keys.close_session(token)
            ctx.auth.forget_session(token)
        response.delete_cookie(SESSION_COOKIE)
        response.delete_cookie(CSRF_COOKIE)

    @router.get("/keys")
    def list_keys(who: Annotated[Principal, admin]) -> list[KeyOut]:
        return [KeyOut.of(row) for row in ctx.keys.list()]

    @router.post("/keys", status_code=201)
    def create_key(who: Annotated[Principal, admin], key: KeyIn) -> KeyCreated:
        """A new key; the answer holds the key itself, which is not kept and not shown again."""
        try:
            row, plaintext = ctx.keys.create(
                key.name, key.role, key.sites, key.all_sites, by=who.name
            )
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return KeyCreated(**KeyOut.of(row).model_dump(), key=plaintext)

    @router.delete("/keys/{key_id}", status_code=204)
    def revoke_key(who: Annotated[Principal, admin], key_id: str) -> None:
        """Revoke a key at once (its requests are refused from now on)."""
        if not ctx.keys.revoke(key_id):
            raise HTTPException(404, f"no key {key_id}")
        ctx.auth.forget(key_id)

    @router.get("/sites")
    def list_sites(who: Annotated[Principal, anyone]) -> list[SiteOut]:
        return [SiteOut.of(row) for row in ctx.sites.all() if who.sees(row.id)]

    @router.get("/sites/{site_id}")
    def get_site(who: Annotated[Principal, anyone], site_id: str) -> SiteOut:
        return SiteOut.of(ctx.site(who, site_id))

    @router.put("/sites/{site_id}")
    def put_site(who: Annotated[Principal, admin], site_id: SiteId, site: SiteIn) -> SiteOut:
        """Create or replace a site."""
        return SiteOut.of(ctx.sites.put(SiteRow(id=site_id, **site.model_dump())))

    @router.post("/custody/verify")
    def verify_custody(who: Annotated[Principal, admin]) -> CustodyCheckOut:
        """Check the whole custody log: each entry against its hash and the one before it,
        the head, and the anchors written to object storage (the evidence chore does this
        every round and logs what it finds)."""
        try:
            problems, anchors = ctx.evidence.check_log()
        except (S3Error, urllib3.exceptions.HTTPError, OSError):
            raise HTTPException(503, "object storage is unreachable") from None
        entries, _ = ctx.evidence.log.head()
        return CustodyCheckOut(ok=not problems, entries=entries, anchors=anchors, problems=problems)

    @router.delete("/sites/{site_id}", status_code=204)
    def delete_site(who: Annotated[Principal, admin], site_id: str) -> None:
        if not ctx.sites.delete(site_id):
            raise HTTPException(404, f"no site {site_id}")

    return router
