"""The station's local HTTP endpoint for a kiosk screen: status, and tagging a dock session.

    GET  /status                  -> the station status (as `evidence station status --json`)
    GET  /metrics                 -> Prometheus text (`ingest.station.health.StationMetrics.render`); 404 when the
                                     station gives no metrics
    POST /sessions/<id>/tag       -> {"by": "010203", "reason"?: "...", "files"?: [...],
                                      "case_number"?: "...", "purpose"?: "...", "important"?: true}

Bound to 127.0.0.1 by default: the kiosk runs on the station itself. Errors answer 400/403/404 with
{"error": "..."}, 503 when the catalogue or the store failed part way (a tag's revision may stand; its seal and
retention are finished by the reconciler and the nightly job), 500 for anything else (logged); a request is always
answered. Nothing here can clear a device, and retention only grows (a case number holds). The kiosk tags as the
station (its "by" is a typed officer number, not a signed-in user), so it can never lift a pending-case hold:
taking away a case number or the important flag that holds a recording answers 403
(`catalog.restamping.change_stamp` decides).
"""
from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import SQLAlchemyError

from catalog import CatalogError, PermissionDenied, RecordingNotFound, StampInvalid
from ingest.errors import first_line
from storage import StorageError

__all__ = ["StatusServer"]

logger = logging.getLogger(__name__)

#: Largest request body accepted (a tag request is a few hundred bytes).
MAX_BODY_BYTES = 64 * 1024
_TAG_PATH = re.compile(r"^/sessions/(\d{1,12})/tag$")


class StatusServer:
    def __init__(self, host: str, port: int, *, status: Callable[[], dict[str, Any]],
                 tag: Callable[..., list[dict[str, Any]]], metrics: Callable[[], bytes] | None = None) -> None:
        self.status, self.tag, self.metrics = status, tag, metrics
        self.httpd = ThreadingHTTPServer((host, port), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="status-http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return type("Handler", (_Handler,), {"endpoint": self})


class _Handler(BaseHTTPRequestHandler):
    """The requests of one StatusServer (`endpoint`, set on a subclass per server)."""

    endpoint: StatusServer

    def log_message(self, format: str, *args: Any) -> None:
        # A scraper polls /metrics every few seconds: its lines would drown the kiosk's requests.
        level = logging.DEBUG if getattr(self, "path", "").startswith("/metrics") else logging.INFO
        logger.log(level, "status endpoint: " + format, *args)

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/status":
            self._send(200, self.endpoint.status())
        elif path == "/metrics" and self.endpoint.metrics is not None:
            self._send_metrics(self.endpoint.metrics)
        else:
            self._send(404, {"error": f"no such resource {self.path!r}"})

    def _send_metrics(self, metrics: Callable[[], bytes]) -> None:
        try:
            data = metrics()
        except Exception as exc:
            logger.exception("Rendering /metrics failed.")
            self._send(500, {"error": f"metrics failed: {exc}"})
            return
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        match = _TAG_PATH.match(self.path)
        if match is None:
            self._send(404, {"error": f"no such resource {self.path!r}"})
            return
        refused = _cross_site(self.headers.get("Content-Type"), self.headers.get("Origin"), self.headers.get("Host"))
        if refused is not None:
            self._send(403, {"error": refused})
            return
        declared = (self.headers.get("Content-Length") or "0").strip()
        if not (declared.isascii() and declared.isdigit()):
            self._send(400, {"error": f"Content-Length {declared[:40]!r} is not a number of bytes"})
            return
        length = int(declared[:12])
        if length > MAX_BODY_BYTES:
            self._send(413, {"error": f"request body over {MAX_BODY_BYTES} bytes"})
            return
        try:
            result = self._tag(int(match.group(1)), self.rfile.read(length))
        except RecordingNotFound as exc:
            self._send(404, {"error": str(exc)})
        except (StampInvalid, ValueError) as exc:
            self._send(400, {"error": str(exc)})
        except PermissionDenied as exc:  # e.g. lifting a pending-case hold: a clerk decides that
            self._send(403, {"error": str(exc)})
        except CatalogError as exc:
            self._send(503, {"error": str(exc)})
        except (SQLAlchemyError, StorageError) as exc:  # the catalogue or the store failed part way: say so
            logger.error("Tagging dock session %s at the kiosk failed: %s", match.group(1), exc)
            self._send(503, {"error": f"the tag could not be finished ({first_line(exc)}): try again; a revision "
                                      f"already made stands, and its seal and retention are finished by the "
                                      f"station's reconciler and the nightly retention job"})
        except Exception as exc:  # a bug: answered and logged, never a dropped connection
            logger.exception("Tagging dock session %s at the kiosk failed.", match.group(1))
            self._send(500, {"error": f"the station could not tag: {first_line(exc)}"})
        else:
            self._send(200, {"tagged": result})

    def _tag(self, session_id: int, raw: bytes) -> list[dict[str, Any]]:
        """Tag dock session *session_id* as the request body *raw* asks (ValueError: a malformed body)."""
        body = json.loads(raw or b"{}")
        if not isinstance(body, dict) or not str(body.get("by", "")).strip():
            raise ValueError('give "by": the officer number of who tags')
        changes = {k: body[k] for k in ("case_number", "purpose", "important") if k in body}
        files = tuple(str(f) for f in body.get("files", []))
        return self.endpoint.tag(session_id=session_id, files=files, by=str(body["by"]),
                                 reason=str(body.get("reason") or "tagged at the station kiosk"), changes=changes)


def _cross_site(content_type: str | None, origin: str | None, host: str | None) -> str | None:
    """Why a tagging request may come from another site's page, or None. The kiosk signs nobody in: any web page
    an officer's browser on the station's network opened could POST to it (a review stamped a case number and a
    legal hold with a `text/plain` request from https://evil.example). A page can send `application/json` to
    another origin only after a CORS preflight this server never answers, and a browser names the page's origin.
    Pure."""
    if (content_type or "").split(";")[0].strip().lower() != "application/json":
        return "tagging takes a JSON body (Content-Type: application/json)"
    if origin is not None and (origin == "null" or urlsplit(origin).netloc != (host or "")):
        return f"tagging is taken only from the station's own kiosk page, not from {origin!r}"
    return None
