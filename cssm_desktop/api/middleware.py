"""Checks before any route, as pure ASGI (no body is read): the Host header must name
the address the server is bound to (a DNS-rebinding page names its own host), and a
request that carries an Origin header comes from a browser page and is refused: this
API has no CORS, no cookies, nothing a web page may call."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
                   Awaitable[None]]


def allowed_hosts(host: str, port: int) -> set[str]:
    names = {host}
    if host in ("127.0.0.1", "::1", "localhost"):
        names |= {"127.0.0.1", "localhost", "[::1]"}
    return {f"{n}:{port}" for n in names} | ({f"[{host}]:{port}"} if ":" in host else set())


class Guard:
    def __init__(self, app: ASGIApp, hosts: Callable[[], set[str]]) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        if headers.get("host", "").lower() not in self.hosts():
            await _refuse(send, 403, "bad_host", "the Host header must name this server's "
                          "own address (127.0.0.1:PORT)")
            return
        if "origin" in headers:
            await _refuse(send, 403, "browser_refused", "requests from web pages are "
                          "refused (an Origin header was sent)")
            return
        await self.app(scope, receive, send)


async def _refuse(send: Callable[[Any], Awaitable[None]], status: int, code: str,
                  message: str) -> None:
    data = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
