"""The store writer: the one narrow privileged path into a local store owned by a separate account.

Deployment (README, "The local store"): an OS account (say `evidence-store`) owns the store; the service account
(`evidence`) can read it but not write, chmod or delete anything in it. The writer runs as `evidence-store`
(optionally with CAP_LINUX_IMMUTABLE, so it can set `chattr +i`) and listens on `<store>/writer.sock`. A
`LocalStore` opened by any other account on a store whose STORE.json says `writer` reads files directly and sends
every write here. The writer accepts only:

    put_file         bytes from a file descriptor passed over the socket (never a path): hashed, then stored under
                     a new name; an existing object is never replaced (its retention may only grow)
    put_manifest     a new write-once manifest (the same bytes again are accepted, other bytes refused)
    put_record       a new write-once archive record (same rule)
    extend_retention later dates only
    set_legal_hold   on or off
    delete           only when the writer's own clock is past retain-until and no hold is set (disposal)
    put_derived / delete_derived   thumbnails and proxies (not evidence)
    sweep_scratch    remove what killed writes left in `incoming/` (storage.backends.local_scratch), their age
                     judged by the writer's own clock and never below an hour whatever the caller asks

Every request is logged with the caller's uid and pid (SO_PEERCRED); with `--allow-uid` only those uids are served.

    python -m storage.writer init  STORE [--immutable]    make (or adopt) a store for this mode: writes STORE.json
    python -m storage.writer serve STORE [--allow-uid UID ...] [--socket-mode 0660] [--socket-group GID]
    python -m storage.writer seal  STORE                  seal every file and folder (after a restore)
    python -m storage.writer audit STORE                  list every path not as the store left it (exit 4 if any)
"""
from __future__ import annotations

import argparse
import base64
import json
import logging
import math
import os
import socket
import socketserver
import struct
import sys
import threading
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from storage import errors
from storage.backend import Leftover, StoredObject

__all__ = ["MAX_REQUEST_BYTES", "StoreWriter", "WriterClient", "init_store", "main"]

logger = logging.getLogger(__name__)

#: A request is one JSON line; manifests and records travel inside it (base64).
MAX_REQUEST_BYTES = 64 * 1024 * 1024


def _when(value: str) -> datetime:
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise ValueError(f"retain_until {value!r} has no time zone")
    return when


def _object_json(obj: StoredObject) -> dict[str, Any]:
    return {"key": obj.key, "sha256": obj.sha256, "size_bytes": obj.size_bytes,
            "retain_until": obj.retain_until.isoformat(), "legal_hold": obj.legal_hold, "location": obj.location}


def _error_json(exc: Exception) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, errors.ObjectLocked):
        out.update(key=exc.key, retain_until=exc.retain_until.isoformat() if exc.retain_until else None,
                   legal_hold=exc.legal_hold, action=exc.action)
    elif isinstance(exc, errors.HashMismatch):
        out.update(path=exc.path, algorithm=exc.algorithm, expected=exc.expected, found=exc.found)
    elif isinstance(exc, errors.SealBroken):
        out.update(key=exc.key, problems=exc.problems)
    elif isinstance(exc, (errors.ObjectExists, errors.ObjectMissing)):
        out.update(key=exc.key, detail=getattr(exc, "detail", ""))
    return out


def _raise_from(answer: dict[str, Any], where: str) -> None:
    kind, message = answer.get("error"), str(answer.get("message", ""))
    if kind == "ObjectLocked":
        until = answer.get("retain_until")
        raise errors.ObjectLocked(answer["key"], retain_until=datetime.fromisoformat(until) if until else None,
                                  legal_hold=bool(answer.get("legal_hold")), action=str(answer.get("action", "change")))
    if kind == "HashMismatch":
        raise errors.HashMismatch(answer["path"], algorithm=answer["algorithm"], expected=answer["expected"],
                                  found=answer["found"])
    if kind == "SealBroken":
        raise errors.SealBroken(answer["key"], list(answer["problems"]))
    if kind == "ObjectExists":
        raise errors.ObjectExists(answer["key"])
    if kind == "ObjectMissing":
        raise errors.ObjectMissing(answer["key"], answer.get("detail", ""))
    if kind == "RetentionRefused":
        raise errors.RetentionRefused(message)
    if kind == "ValueError":
        raise ValueError(message)
    if kind == "PermissionError":
        raise PermissionError(message)
    raise errors.BackendUnavailable(f"store writer {where}", f"{kind}: {message}")


class WriterClient:
    """The service's side: one connection per request to the writer's socket."""

    def __init__(self, path: Path, *, timeout_s: float = 600.0) -> None:
        self.path = path
        self.timeout_s = timeout_s

    def call(self, request: dict[str, Any], fd: int | None = None) -> dict[str, Any]:
        data = json.dumps(request).encode() + b"\n"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout_s)
                sock.connect(str(self.path))
                if fd is None:
                    sock.sendall(data)
                else:
                    socket.send_fds(sock, [data[:1]], [fd])
                    sock.sendall(data[1:])
                reply = b""
                while not reply.endswith(b"\n"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
        except OSError as exc:
            raise errors.BackendUnavailable(f"store writer {self.path}", str(exc)) from exc
        try:
            answer: dict[str, Any] = json.loads(reply)
        except ValueError as exc:
            raise errors.BackendUnavailable(f"store writer {self.path}", f"unreadable answer {reply[:200]!r}") from exc
        if not answer.get("ok"):
            _raise_from(answer, str(self.path))
        return answer

    @staticmethod
    def _object(answer: dict[str, Any]) -> StoredObject:
        o = answer["object"]
        return StoredObject(key=o["key"], sha256=o["sha256"], size_bytes=o["size_bytes"],
                            retain_until=datetime.fromisoformat(o["retain_until"]), legal_hold=o["legal_hold"],
                            location=o["location"])

    def put_file(self, fd: int, *, sha256: str, size_bytes: int, retain_until: datetime) -> StoredObject:
        return self._object(self.call({"op": "put_file", "sha256": sha256, "size_bytes": size_bytes,
                                       "retain_until": retain_until.isoformat()}, fd))

    def put_manifest(self, sha256: str, revision: int, data: bytes, retain_until: datetime) -> StoredObject:
        return self._object(self.call({"op": "put_manifest", "sha256": sha256, "revision": revision,
                                       "data": base64.b64encode(data).decode(),
                                       "retain_until": retain_until.isoformat()}))

    def put_record(self, name: str, data: bytes, retain_until: datetime) -> StoredObject:
        return self._object(self.call({"op": "put_record", "name": name, "data": base64.b64encode(data).decode(),
                                       "retain_until": retain_until.isoformat()}))

    def extend_retention(self, sha256: str, retain_until: datetime) -> StoredObject:
        return self._object(self.call({"op": "extend_retention", "sha256": sha256,
                                       "retain_until": retain_until.isoformat()}))

    def set_legal_hold(self, sha256: str, on: bool) -> StoredObject:
        return self._object(self.call({"op": "set_legal_hold", "sha256": sha256, "on": bool(on)}))

    def delete(self, sha256: str) -> None:
        self.call({"op": "delete", "sha256": sha256})

    def put_derived(self, fd: int, sha256: str, name: str) -> str:
        return str(self.call({"op": "put_derived", "sha256": sha256, "name": name}, fd)["key"])

    def delete_derived(self, sha256: str) -> int:
        return int(self.call({"op": "delete_derived", "sha256": sha256})["removed"])

    def sweep_scratch(self, older_than: timedelta) -> list[Leftover]:
        answer = self.call({"op": "sweep_scratch", "older_than_s": older_than.total_seconds()})
        return [Leftover(str(item["name"]), str(item["reason"]), item.get("size_bytes")) for item in answer["removed"]]


#: The youngest scratch file the writer removes on a client's sweep, whatever the client asks: one client may not
#: cut short another's live write. (A second name of a stored file goes at once: it is never a live write's.)
WRITER_SCRATCH_FLOOR_S = 3600.0
_LONGEST_AGE_S = 100 * 365 * 86400.0


class StoreWriter(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The writer's side: serves one request per connection on `<store>/writer.sock`."""

    daemon_threads = True

    def __init__(self, root: Path, *, allow_uids: set[int] | None = None, socket_mode: int = 0o660,
                 socket_gid: int | None = None) -> None:
        from storage.backends.local import LocalStore
        from storage.backends.local_tree import WRITER_SOCKET

        self.store = LocalStore(root, writer=False)
        self.allow_uids = allow_uids
        self.socket_path = root / WRITER_SOCKET
        with self.store.tree.changing(root):
            self.socket_path.unlink(missing_ok=True)
            super().__init__(str(self.socket_path), _Handler)
            if socket_gid is not None:
                os.chown(self.socket_path, -1, socket_gid)
            os.chmod(self.socket_path, socket_mode)

    def server_close(self) -> None:
        super().server_close()
        with self.store.tree.changing(self.store.root):
            self.socket_path.unlink(missing_ok=True)

    def handle(self, request: dict[str, Any], fds: list[int], uid: int) -> dict[str, Any]:
        store = self.store
        op = request.get("op")
        if op == "put_file":
            if len(fds) != 1:
                raise ValueError("put_file needs exactly one file descriptor")
            stored = store.put_fd(fds[0], sha256=str(request["sha256"]), retain_until=_when(request["retain_until"]))
            return {"object": _object_json(stored)}
        if op == "put_manifest":
            stored = store.put_manifest(str(request["sha256"]), int(request["revision"]),
                                        base64.b64decode(request["data"]), retain_until=_when(request["retain_until"]))
            return {"object": _object_json(stored)}
        if op == "put_record":
            stored = store.put_record(str(request["name"]), base64.b64decode(request["data"]),
                                      retain_until=_when(request["retain_until"]))
            return {"object": _object_json(stored)}
        if op == "extend_retention":
            return {"object": _object_json(store.extend_retention(str(request["sha256"]),
                                                                  _when(request["retain_until"])))}
        if op == "set_legal_hold":
            return {"object": _object_json(store.set_legal_hold(str(request["sha256"]), bool(request["on"])))}
        if op == "delete":
            store.delete(str(request["sha256"]), now=datetime.now(UTC))  # the writer's clock, not the caller's
            return {}
        if op == "put_derived":
            if len(fds) != 1:
                raise ValueError("put_derived needs exactly one file descriptor")
            return {"key": store.put_derived_fd(fds[0], str(request["sha256"]), str(request["name"]))}
        if op == "delete_derived":
            return {"removed": store.delete_derived(str(request["sha256"]))}
        if op == "sweep_scratch":
            return {"removed": [asdict(leftover) for leftover in _sweep(store, request["older_than_s"])]}
        raise ValueError(f"the store writer does not do {op!r}")


def _sweep(store: Any, asked_s: Any) -> list[Leftover]:
    """The store's sweep_scratch judged by the writer's clock, not the caller's, and never younger than its floor."""
    asked = float(asked_s)
    if not math.isfinite(asked):
        raise ValueError(f"sweep_scratch: older_than_s {asked_s!r} is not a number of seconds")
    older_than = timedelta(seconds=min(max(asked, WRITER_SCRATCH_FLOOR_S), _LONGEST_AGE_S))
    removed: list[Leftover] = store.sweep_scratch(older_than=older_than, now=datetime.now(UTC))
    return removed


class _Handler(socketserver.BaseRequestHandler):
    server: StoreWriter

    def handle(self) -> None:
        sock: socket.socket = self.request
        pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                              struct.calcsize("3i")))
        fds: list[int] = []
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, 65536, 2)
            while not data.endswith(b"\n") and len(data) < MAX_REQUEST_BYTES:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
            if self.server.allow_uids is not None and uid not in self.server.allow_uids:
                raise PermissionError(f"uid {uid} may not write to this store")
            request = json.loads(data)
            logger.info("store writer: uid %d pid %d asks %s %s", uid, pid, request.get("op"),
                        request.get("sha256") or request.get("name") or "")
            answer: dict[str, Any] = {"ok": True, **self.server.handle(request, fds, uid)}
        except (errors.StorageError, ValueError, KeyError, TypeError, PermissionError) as exc:
            logger.warning("store writer: uid %d pid %d refused: %s", uid, pid, exc)
            bad = isinstance(exc, (KeyError, TypeError))
            answer = _error_json(ValueError(f"bad request: {exc!r}") if bad else exc)
        except OSError as exc:
            logger.error("store writer: uid %d pid %d failed: %s", uid, pid, exc)
            answer = _error_json(errors.BackendUnavailable("store writer", str(exc)))
        finally:
            for fd in fds:
                os.close(fd)
        sock.sendall(json.dumps(answer).encode() + b"\n")


def init_store(root: Path, *, immutable: bool) -> Path:
    """Create (or adopt) a store for the separate-owner mode: its STORE.json says `writer` (and `immutable`), then
    every file and folder is sealed. Run as the store's owner account."""
    from storage.backends.local import LocalStore
    from storage.backends.local_tree import STORE_MARKER, read_marker

    store = LocalStore(root, immutable=immutable, writer=False)
    marker = root / STORE_MARKER
    wanted = {"writer": True, "immutable": immutable}
    current = read_marker(root)
    if {k: current.get(k) for k in wanted} != wanted:
        data = json.dumps({**wanted, "created_at": datetime.now(UTC).isoformat(timespec="seconds")}).encode()
        with store.tree.changing(root):
            if marker.exists():
                from storage.hardening import set_immutable

                if immutable or current.get("immutable"):
                    set_immutable(marker, False)
                marker.unlink()
            marker.write_bytes(data)
            store.tree.seal_file(marker)
    store.seal_all()
    return marker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m storage.writer", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="make or adopt a store for the separate-owner mode")
    init.add_argument("store", type=Path)
    init.add_argument("--immutable", action="store_true", help="also set chattr +i (needs CAP_LINUX_IMMUTABLE)")
    serve = sub.add_parser("serve", help="serve writes on STORE/writer.sock")
    serve.add_argument("store", type=Path)
    serve.add_argument("--allow-uid", type=int, action="append", help="serve only these uids (repeatable)")
    serve.add_argument("--socket-mode", default="0660", help="permission bits of the socket (default 0660)")
    serve.add_argument("--socket-group", type=int, help="group id of the socket (the service account's group)")
    for name in ("seal", "audit"):
        sub.add_parser(name).add_argument("store", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from storage.backends.local import LocalStore

    try:
        if args.command == "init":
            print(f"store writer: {init_store(args.store, immutable=args.immutable)} written; the store is sealed")
        elif args.command == "seal":
            print(f"sealed {LocalStore(args.store, writer=False).seal_all()} path(s)")
        elif args.command == "audit":
            problems = LocalStore(args.store, writer=False).audit()
            for problem in problems:
                print(problem)
            print(f"{len(problems)} problem(s)")
            return 4 if problems else 0
        else:
            server = StoreWriter(args.store, allow_uids=set(args.allow_uid) if args.allow_uid else None,
                                 socket_mode=int(args.socket_mode, 8), socket_gid=args.socket_group)
            logger.info("store writer: serving %s", server.socket_path)
            try:
                server.serve_forever()
            finally:
                server.server_close()
    except (errors.StorageError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def serve_in_thread(root: Path, **kwargs: Any) -> tuple[StoreWriter, threading.Thread]:
    """Start a writer in a thread of this process (tests, demos); stop it with `server.shutdown()`."""
    server = StoreWriter(root, **kwargs)
    thread = threading.Thread(target=server.serve_forever, name="store-writer", daemon=True)
    thread.start()
    return server, thread


if __name__ == "__main__":
    sys.exit(main())
