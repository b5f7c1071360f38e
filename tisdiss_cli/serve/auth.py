"""Bearer-token authentication on every route, as ASGI middleware.

A request carries the token as ``Authorization: Bearer TOKEN``, or once as the ``access_token``
query parameter (RFC 6750), which a browser opening ``/?access_token=TOKEN`` uses: the answer then
sets an HttpOnly, SameSite=Strict cookie, so the page's own requests (assets, audio players,
downloads) carry it without the token in any URL of the page.
"""

from __future__ import annotations

import json
import secrets
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
Message = dict[str, Any]
COOKIE = "tisdiss_token"


class BearerAuth:
    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.token is None:
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        from_query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("access_token", [""])[-1]
        given = [_bearer(headers.get(b"authorization", b"")), _cookie(headers.get(b"cookie", b"")), from_query]
        if not any(self._matches(value) for value in given):
            await _refuse(send, "this server needs a token: send 'Authorization: Bearer TOKEN'")
            return
        if not self._matches(from_query):
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie = f"{COOKIE}={from_query}; HttpOnly; SameSite=Strict; Path=/"
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _matches(self, value: str) -> bool:
        return bool(value) and self.token is not None and secrets.compare_digest(value.encode(), self.token)


def _bearer(header: bytes) -> str:
    scheme, _, value = header.decode("latin-1").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _cookie(header: bytes) -> str:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header.decode("latin-1"))
    except Exception:  # a malformed Cookie header is no token
        return ""
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else ""


async def _refuse(send: Any, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b'Bearer realm="tisdiss"'),
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})
