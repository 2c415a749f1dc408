"""A TCP relay on 127.0.0.1 in front of a real server, to make it stop answering without closing anything.

`hang_after(n)`: once *n* bytes have gone to the server (over all connections), the relay stops moving bytes
either way and keeps every connection open — a store that goes silent mid-upload, as a wedged server or a network
path that drops packets does (no RST, so the client waits for its own socket timeout). `resume()` moves bytes
again; connections opened meanwhile are held until then.
"""
from __future__ import annotations

import select
import socket
import threading
from contextlib import suppress

__all__ = ["TcpRelay"]


class TcpRelay:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self.hung = threading.Event()  # set when the relay stopped moving bytes
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._hang_after: int | None = None
        self.bytes_up = 0
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hang_after(self, nbytes: int) -> None:
        with self._lock:
            self._hang_after = self.bytes_up + nbytes

    def resume(self) -> None:
        with self._lock:
            self._hang_after = None
        self.hung.clear()
        self._flowing.set()

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        with suppress(OSError):
            self._listener.close()
        with self._lock:
            for s in self._sockets:
                with suppress(OSError):
                    s.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server), name="relay-pump", daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        """Both directions of one connection, on one thread; bytes move only while the relay flows."""
        peers = {client: server, server: client}
        try:
            while not self._closed.is_set():
                self._flowing.wait()
                if self._closed.is_set():
                    return
                readable, _, _ = select.select(list(peers), [], [], 0.2)
                for sock in readable:
                    if not self._flowing.is_set():
                        break
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client and self._count_up(len(data)):
                        self._flowing.wait()  # the threshold crossed inside this chunk: held until resume()
                        if self._closed.is_set():
                            return
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            for s in (client, server):
                with suppress(OSError):
                    s.close()

    def _count_up(self, n: int) -> bool:
        """Count *n* bytes towards the server; True when they cross the hang threshold (the relay hangs now)."""
        with self._lock:
            self.bytes_up += n
            if self._hang_after is None or self.bytes_up < self._hang_after:
                return False
        self._flowing.clear()
        self.hung.set()
        return True
