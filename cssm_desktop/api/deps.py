"""What every route needs: the token checked (constant time), the engine."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..engine import Engine
from .errors import ApiError

bearer = HTTPBearer(auto_error=False, description="the token in the API's token file")


def authorized(request: Request,
               creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    token: Callable[[], str] = request.app.state.token
    given = creds.credentials if creds is not None else ""
    # compare_digest on bytes: any length, no early exit on the first differing byte.
    if not given or not hmac.compare_digest(given.encode(), token().encode()):
        raise ApiError(401, "unauthorized", "a valid `Authorization: Bearer <token>` is "
                       "needed (the token file's path is printed by `cssm serve`)",
                       {"WWW-Authenticate": "Bearer"})


def engine(request: Request) -> Engine:
    got = request.app.state.engine()
    if got is None:
        raise ApiError(503, "no_vault", "no vault is configured here yet")
    return got


EngineDep = Annotated[Engine, Depends(engine)]
