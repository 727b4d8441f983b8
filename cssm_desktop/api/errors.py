"""Every error as JSON with a stable code and one line of text, never a stack."""

from __future__ import annotations

import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    Cancelled,
    CssmError,
    DestinationExists,
    InputError,
    Locked,
    NotEnoughStores,
    NotFound,
    NoVault,
    StoreError,
    WrongPassword,
    log_text,
)

log = logging.getLogger(__name__)

# (status, code) per engine error, most specific first.
_MAPPING: list[tuple[type[CssmError], int, str]] = [
    (WrongPassword, 401, "wrong_password"),
    (Locked, 423, "locked"),
    (NotFound, 404, "not_found"),
    (InputError, 400, "bad_input"),
    (DestinationExists, 409, "exists"),
    (NoVault, 503, "no_vault"),
    (NotEnoughStores, 503, "stores_unavailable"),
    (StoreError, 502, "store_error"),
    (Cancelled, 409, "cancelled"),
]


class ApiError(HTTPException):
    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status, message, headers)
        self.code = code


def body(code: str, message: str) -> dict[str, object]:
    return {"error": {"code": code, "message": " ".join(message.split())}}


def engine_error(exc: CssmError) -> tuple[int, str]:
    for kind, status, code in _MAPPING:
        if isinstance(exc, kind):
            return status, code
    return 500, "engine_error"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_r: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(body(exc.code, str(exc.detail)), exc.status_code, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(body(code, str(exc.detail)), exc.status_code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse(body("bad_request", f"{where}: {first.get('msg', 'invalid')}"),
                            422)

    @app.exception_handler(CssmError)
    async def engine(_r: Request, exc: CssmError) -> JSONResponse:
        status, code = engine_error(exc)
        return JSONResponse(body(code, str(exc)), status)

    @app.exception_handler(Exception)
    async def crashed(_r: Request, exc: Exception) -> JSONResponse:
        log.error("api: unexpected %s", log_text(exc))
        return JSONResponse(body("internal", "unexpected error (a bug; the log has the "
                                             "details)"), 500)
