"""Refuse a NUL character in what a browser or API client sends, before any route reads it.

No text the archive keeps may hold one: PostgreSQL refuses it in every text column, so a NUL typed into a purpose,
a reason or a case number reached the catalogue and ended in a 500 (SQLite stored it). A request whose query string,
form (URL-encoded) or JSON body carries one is answered 400, naming where; nothing is read or written. Multipart
uploads (documents) carry binary files and are left to their route.
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["NulGuard"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Bodies read whole to be checked (a form or a JSON request; larger ones are not this middleware's to hold).
MAX_CHECKED = 1024 * 1024
_MARKS = {"application/x-www-form-urlencoded": (b"%00", b"\x00"), "application/json": (b"\\u0000", b"\x00")}


def _has_nul(raw: bytes, marks: tuple[bytes, ...]) -> bool:
    return any(mark in raw for mark in marks)


class NulGuard:
    """ASGI middleware: 400 for a NUL in the query string or a form or JSON body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _has_nul(scope.get("query_string", b""), (b"%00", b"\x00")):
            await _refuse(send, "the address")
            return
        kind = dict(scope.get("headers") or []).get(b"content-type", b"").split(b";")[0].strip().decode("latin-1")
        marks = _MARKS.get(kind)
        if marks is None:
            await self.app(scope, receive, send)
            return
        chunks: list[Message] = []
        size = 0
        while True:  # the whole body (a form or JSON request is small); then handed on unchanged
            message = await receive()
            chunks.append(message)
            size += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body") or size > MAX_CHECKED:
                break
        if size <= MAX_CHECKED and _has_nul(b"".join(m.get("body", b"") for m in chunks), marks):
            await _refuse(send, "the form" if kind.endswith("urlencoded") else "the JSON body")
            return

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)


async def _refuse(send: Send, where: str) -> None:
    body = json.dumps({"error": f"{where} holds a NUL character (\\0 or %00): no text the archive keeps may hold "
                                "one; remove it and send again"}).encode()
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
