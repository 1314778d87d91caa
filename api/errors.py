"""One shape for every error the API answers, whatever raised it.

Example body:
    {"error": {"status": 404, "code": "not_found", "message": "no event 4f1c", "fields": []}}
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    416: "range_not_satisfiable",
    422: "invalid",
    429: "rate_limited",
    500: "internal",
    502: "bad_gateway",
    503: "unavailable",
}


class FieldError(BaseModel):
    """One invalid part of a request: where (`query.limit`, `body.url`) and why. The value
    itself is never repeated: it may be a password."""

    location: str
    message: str


class ErrorDetail(BaseModel):
    status: int
    code: str
    message: str
    fields: list[FieldError] = []


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_response(
    status: int,
    message: str,
    fields: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    detail = ErrorDetail(
        status=status, code=CODES.get(status, "error"), message=message, fields=fields or []
    )
    return JSONResponse(ErrorBody(error=detail).model_dump(), status, headers=headers)


# Every route may answer these; the OpenAPI schema says so, with the body above.
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorBody} for status in (401, 403, 404, 422, 429)
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            FieldError(
                location=".".join(str(part) for part in error.get("loc", ())),
                message=str(error.get("msg", "invalid")),
            )
            for error in exc.errors()
        ]
        return error_response(422, "the request is not valid", fields)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error_response(500, "internal error")  # the details go to the log only
