"""A cap on request bodies, declared or streamed, before any route reads them."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response


class BodyTooLargeError(HTTPException):
    """Raised from `receive` when a streamed body passes the limit: an HTTPException, so that
    a route reading the body answers it as such (a 413) rather than as a parse error."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body exceeds {max_bytes} bytes")


class BodyLimit:
    """ASGI middleware: a body over `max_bytes` gets a 413, whether its Content-Length says so
    up front or a chunked body grows past the limit while it is read.

    Example:
        >>> app.add_middleware(BodyLimit, max_bytes=1024**2)  # doctest: +SKIP
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            error = BodyTooLargeError(self.max_bytes)
            await error_response(error.status_code, error.detail)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
            return message

        await self.app(scope, counted, send)
