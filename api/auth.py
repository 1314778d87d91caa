"""Who is asking, and whether they may: API keys, roles, and a request budget per key."""

# No `from __future__ import annotations`: FastAPI must see the Annotated[..., Depends] of
# `Auth.allow`'s dependency, which names a bound method, at definition time.

import hashlib
import threading
import time
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers

from storage.database.accounts import ApiKeys, Principal, Role
from storage.database.limits import SharedBuckets

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer xl_...")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: xl_...")
SESSION_COOKIE, CSRF_COOKIE, CSRF_HEADER = "xl_session", "xl_csrf", "X-CSRF-Token"
session_cookie = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, description="the console's session (POST /api/session)"
)
UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def one_key(bearer_key: str | None, api_key: str | None) -> str | None:
    """The key a request presents, by either header; two different ones are refused."""
    if bearer_key and api_key and bearer_key != api_key:
        raise HTTPException(401, "two different API keys: send one", UNAUTHORIZED)
    return bearer_key or api_key


def key_of_headers(headers: Mapping[str, str]) -> str | None:
    """The key in raw headers (a WebSocket handshake, which the security schemes skip)."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return one_key(token.strip() if scheme.lower() == "bearer" else None, headers.get("x-api-key"))


def check_csrf(method: str, headers: Headers, cookies: Mapping[str, str]) -> None:
    """A session cookie is sent by the browser whoever made the page: a request that changes
    something must also carry the CSRF cookie's value in a header, which only the console's
    own pages can read (double submit; the cookies are SameSite=Strict besides)."""
    if method in SAFE_METHODS:
        return
    expected = cookies.get(CSRF_COOKIE)
    if not expected or headers.get(CSRF_HEADER) != expected:
        raise HTTPException(403, f"a session's changes need the {CSRF_HEADER} header")


def same_origin(headers: Headers) -> bool:
    """A browser's WebSocket carries the session cookie of any page that opens it: only the
    console's own origin may use it."""
    origin, host = headers.get("origin", ""), headers.get("host", "")
    return bool(host) and origin.split("://", 1)[-1] == host


class TokenBuckets:
    """Per-key request budget for the whole deployment: `rate_per_s` on average, bursts up to
    `burst`, however many API processes serve the key. Each process leases tokens from the
    key's bucket in the index (`SharedBuckets`) as many at a time as it spent in the last
    `LEASE_S` (at least one, at most a quarter of the burst): a busy key costs the index a
    write per lease, an idle one a write per request.

    Example:
        >>> from storage.database.engine import Database
        >>> shared = SharedBuckets(Database.connect("sqlite://"), rate_per_s=1.0, burst=2)
        >>> buckets = TokenBuckets(shared)
        >>> [buckets.take("k", now=0.0) for _ in range(3)]
        [0.0, 0.0, 1.0]
    """

    LEASE_S = 0.25

    def __init__(self, shared: SharedBuckets) -> None:
        self.shared = shared
        self.most = max(1, shared.burst // 4)
        self._held: dict[str, int] = {}  # key -> tokens leased and not yet spent
        self._spent: dict[str, tuple[float, int]] = {}  # key -> (window start, spent in it)
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """Spend one token: 0.0 if there was one, else the seconds until there will be."""
        now = time.time() if now is None else now
        with self._lock:
            started, spent = self._spent.get(key, (now, 0))
            recent = spent  # what this window (or the one just over) spent: the lease's size
            if now - started >= self.LEASE_S:
                started, spent = now, 0
            self._spent[key] = (started, spent + 1)
            if self._held.get(key, 0) >= 1:
                self._held[key] -= 1
                return 0.0
        taken, wait = self.shared.take(key, min(max(1, recent), self.most), now)
        if taken == 0:
            return wait
        with self._lock:
            self._held[key] = self._held.get(key, 0) + taken - 1
        return 0.0


class Auth:
    """FastAPI dependencies: `principal` (any valid key) and `allow(roles)`.

    A key comes as `Authorization: Bearer xl_...` or `X-API-Key: xl_...`; none or an invalid
    one is a 401, a role the route does not admit a 403, a key over its budget a 429.

    Example:
        >>> budget = TokenBuckets(SharedBuckets(index, rate_per_s=20, burst=40))  # doctest: +SKIP
        >>> auth = Auth(ApiKeys(index), budget)  # doctest: +SKIP
        >>> @app.get("/api/keys")  # doctest: +SKIP
        ... def list_keys(who: Principal = auth.allow("admin")) -> list[KeyOut]: ...
    """

    def __init__(self, keys: ApiKeys, budget: TokenBuckets, remember_s: float = 5.0) -> None:
        self.keys = keys
        self.budget = budget
        # A key checked lately is not looked up again for `remember_s`: a revocation made on
        # another API process takes that long to count here (on this one: at once).
        self.remember_s = remember_s
        self._checked: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def forget(self, key_id: str) -> None:
        """Drop what is remembered of a key and its sessions (revoked, or logged out)."""
        with self._lock:
            self._checked = {k: v for k, v in self._checked.items() if v[0].key_id != key_id}

    def forget_session(self, token: str) -> None:
        """Drop a session at once (logged out)."""
        with self._lock:
            self._checked.pop(self._digest(token, session=True), None)

    @staticmethod
    def _digest(presented: str, session: bool) -> str:
        return hashlib.sha256(f"{session}:{presented}".encode()).hexdigest()

    def _lookup(self, presented: str, session: bool = False) -> Principal | None:
        digest = self._digest(presented, session)
        now = time.monotonic()
        with self._lock:
            remembered = self._checked.get(digest)
        if remembered is not None and remembered[1] > now:
            return remembered[0]
        lookup = self.keys.session_principal if session else self.keys.authenticate
        principal = lookup(presented)
        if principal is not None:
            with self._lock:
                if len(self._checked) > 10_000:  # forged keys are never kept, valid ones few
                    self._checked.clear()
                self._checked[digest] = (principal, now + self.remember_s)
        return principal

    async def principal(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
        api_key: Annotated[str | None, Security(api_key_header)],
        session: Annotated[str | None, Security(session_cookie)],
    ) -> Principal:
        bearer_key = credentials.credentials if credentials is not None else None
        key = one_key(bearer_key, api_key)
        if key is None and session:
            check_csrf(request.method, request.headers, request.cookies)
            return self.authenticate_key(session, session=True)
        return self.authenticate_key(key)

    def still_valid(self, presented: str, session: bool = False) -> bool:
        """Whether a key (or session) admitted earlier still is: not revoked, not logged out,
        not expired (looked up at most once per `remember_s`; no request budget spent)."""
        return self._lookup(presented, session) is not None

    def authenticate_key(self, presented: str | None, session: bool = False) -> Principal:
        """The principal of a key (or a console session), spending one request of its key's
        budget; 401 or 429 if not."""
        if not presented:
            raise HTTPException(401, "an API key is required", UNAUTHORIZED)
        principal = self._lookup(presented, session)
        if principal is None:
            what = "session has ended" if session else "API key is not valid"
            raise HTTPException(401, f"the {what}", UNAUTHORIZED)
        wait = self.budget.take(principal.key_id)
        if wait > 0:
            retry = str(max(1, round(wait)))
            raise HTTPException(429, "too many requests for this key", {"Retry-After": retry})
        return principal

    def allow(self, *roles: Role) -> Any:
        """A dependency that admits keys of `roles` and gives their Principal. Both are
        coroutines: run on the event loop, not a worker thread each (a key is looked up in the
        index once per `remember_s`, a short wait the loop can take)."""
        admitted = frozenset(roles)

        async def check(principal: Annotated[Principal, Depends(self.principal)]) -> Principal:
            if principal.role not in admitted:
                raise HTTPException(403, f"a {principal.role} key may not do this")
            return principal

        return Depends(check)
