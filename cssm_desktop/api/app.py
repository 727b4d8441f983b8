"""The FastAPI application: routes under /v1, every one behind the token; OpenAPI at
/v1/openapi.json (made from the routes and models, not written by hand); no docs pages,
no CORS."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute

from .. import __version__
from ..engine import Engine
from . import errors
from .deps import authorized
from .jobs import Jobs, Watch
from .middleware import Guard
from .routers import files, history, jobs, vault

MAX_JSON = 64 * 1024   # a JSON body (not a file) is small: a password, gc options


def _operation_id(route: APIRoute) -> str:
    return route.name   # stable ids for generated clients: upload, list_files, ...


def create_app(engine: Callable[[], Engine | None], token: Callable[[], str],
               hosts: Callable[[], set[str]], watch: Watch | None = None,
               changed: Callable[[str], None] | None = None) -> FastAPI:
    app = FastAPI(title="CSSM Desktop local API", version=__version__,
                  description="Store and restore files in the vault from other programs "
                              "on this computer. Every request needs `Authorization: "
                              "Bearer <token>`.",
                  openapi_url="/v1/openapi.json", docs_url=None, redoc_url=None,
                  generate_unique_id_function=_operation_id,
                  dependencies=[Depends(authorized)])
    app.state.engine = engine
    app.state.token = token
    app.state.jobs = Jobs(watch, changed)
    errors.install(app)
    for router in (files.router, vault.router, jobs.router, history.router):
        app.include_router(router)
    app.add_middleware(Guard, hosts=hosts)   # outermost: before routing and auth
    return app
