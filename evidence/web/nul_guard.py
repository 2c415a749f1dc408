"""Refuse a NUL character in what a browser or API client sends, before any route reads it.

No text the archive keeps may hold one: PostgreSQL refuses it in every text column, so a NUL typed into a purpose,
a reason or a case number reached the catalogue and ended in a 500 (SQLite stored it). A request whose path, query
string, form (URL-encoded, or the text fields of a multipart form up to MAX_CHECKED) or JSON body (any
`application/…+json`) carries one is answered 400, naming where; nothing is read or written. A URL-encoded or JSON
body larger than MAX_CHECKED is refused (413): no form of this application is that large. A multipart upload
larger than that (a document) goes to its route unread; what PostgreSQL still refuses there is a 400 too
(evidence.web.app's handler of the database's refusal), never a 500.
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["MAX_CHECKED", "NUL_REFUSED", "NulGuard"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Bodies read whole to be checked (a form or a JSON request; a multipart form with no large file).
MAX_CHECKED = 8 * 1024 * 1024


def _kind(scope: Scope) -> tuple[str, bytes]:
    """The body's media type, lower case (the first Content-Type header, as Starlette reads it), and its boundary
    for a multipart form."""
    for name, value in scope.get("headers") or []:
        if name.lower() == b"content-type":
            media, _, params = value.partition(b";")
            boundary = b""
            for param in params.split(b";"):
                key, _, found = param.strip().partition(b"=")
                if key.lower() == b"boundary":
                    boundary = found.strip(b'"')
            return media.strip().decode("latin-1").lower(), boundary
    return "", b""


def _multipart_text_has_nul(body: bytes, boundary: bytes) -> bool:
    """Whether a field of the form that is not a file holds a NUL (a file's bytes are its own)."""
    for part in body.split(b"--" + boundary):
        head, _, content = part.partition(b"\r\n\r\n")
        if b"filename=" not in head.lower() and b"\x00" in content:
            return True
    return False


def _refusal(kind: str, boundary: bytes, body: bytes) -> str | None:
    """Where the body holds a NUL (None: it does not)."""
    if kind == "application/x-www-form-urlencoded":
        return "the form" if b"%00" in body or b"\x00" in body else None
    if kind == "multipart/form-data":
        return "the form" if boundary and _multipart_text_has_nul(body, boundary) else None
    return "the JSON body" if b"\\u0000" in body or b"\x00" in body else None


def _checked(kind: str) -> bool:
    return kind in ("application/x-www-form-urlencoded", "multipart/form-data", "application/json") or (
        kind.startswith("application/") and kind.endswith("+json"))


class NulGuard:
    """ASGI middleware: 400 for a NUL in the path, the query string or a form or JSON body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope.get("path", "") or b"%00" in scope.get("raw_path", b"") or b"\x00" in scope.get(
                "raw_path", b""):
            await _refuse(send, 400, f"the address {NUL_REFUSED}")
            return
        if _has_nul(scope.get("query_string", b""), (b"%00", b"\x00")):
            await _refuse(send, 400, f"the address {NUL_REFUSED}")
            return
        kind, boundary = _kind(scope)
        if not _checked(kind):
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
        if size > MAX_CHECKED and kind != "multipart/form-data":
            await _refuse(send, 413, f"the body ({kind}) is over {MAX_CHECKED // (1024 * 1024)} MiB: no form or "
                                     "request of this application is that large")
            return
        where = _refusal(kind, boundary, b"".join(m.get("body", b"") for m in chunks)) if size <= MAX_CHECKED \
            else None
        if where is not None:
            await _refuse(send, 400, f"{where} {NUL_REFUSED}")
            return

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)


def _has_nul(raw: bytes, marks: tuple[bytes, ...]) -> bool:
    return any(mark in raw for mark in marks)


NUL_REFUSED = ("holds a NUL character (\\0 or %00): no text the archive keeps may hold one; remove it and send "
               "again")


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
