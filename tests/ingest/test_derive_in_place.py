"""Issue 17, target 2: derived media and the decode check read the stored original where it is, never a copy.

Real media made by ffmpeg, ingested into the real local WORM store and a real SeaweedFS S3 Object Lock bucket;
thumbnails and proxies made by the real OpenCV and ffmpeg. The work folder is watched while they run: nothing of
the original's size may appear in it. For S3, a recording HTTP relay between the readers and SeaweedFS shows who
fetched the original and how (libavformat with ranged GETs on a presigned URL, not boto3), and can cut the
readers' downloads short to show that a dropped connection is never recorded as damage.
"""
from __future__ import annotations

import http.client
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote, urlsplit

import cv2
import numpy as np
import pytest
from sqlmodel import Session, select

from catalog import DerivedMedia, Recording
from catalog.integrity import integrity_history
from ingest import derive
from ingest.decode_check import check_recording
from ingest.derive import (
    IO_TIMEOUT_S,
    PROXY_TIMEOUT_S,
    THUMBNAIL_VALID_S,
    FfmpegRefused,
    derive_recording,
    make_proxy,
    video_thumbnail,
)
from ingest.errors import DeriveFailed
from ingest.pipeline import IngestOptions, ingest_folder
from ingest.samples import make_photo, make_wav, run_ffmpeg
from storage import LocalStore, S3WormStore, make_s3_client, object_key
from tests.helpers.clips import damaged_clip, ffmpeg_runs, ffmpeg_shim, ffmpeg_stopped_once_at_start, noisy_clip
from tests.helpers.media_work import parent_of

pytestmark = pytest.mark.usefixtures("ffmpeg_available")

NAMES = {"video": "MVI_0001.MP4", "photo": "IMG_0002.JPG", "audio": "REC_0003.WAV", "damaged": "MVI_0004.MP4",
         "colours": "MVI_0005.MP4"}


# ----------------------------------------------------------------------------- media and ingest


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory, ffmpeg_available: None) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("in-place-media")
    video = noisy_clip(root / "video.mp4")
    # 2 s, red until 0.8 s, green until 1.6 s, then blue, one keyframe: its thumbnail (one second in) is green
    colours = root / "colours.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "color=c=red:size=320x240:rate=25:duration=0.8", "-f", "lavfi",
               "-i", "color=c=lime:size=320x240:rate=25:duration=0.8", "-f", "lavfi",
               "-i", "color=c=blue:size=320x240:rate=25:duration=0.4", "-filter_complex",
               "[0:v][1:v][2:v]concat=n=3:v=1[v]", "-map", "[v]", "-c:v", "libx264", "-g", "250",
               "-pix_fmt", "yuv420p", str(colours))
    return {"video": video, "photo": make_photo(root / "photo.jpg", size="1920x1080"),
            "audio": make_wav(root / "audio.wav", seconds=3.0), "damaged": damaged_clip(root / "bad.mp4", video),
            "colours": colours}


def _ingest(tmp_path: Path, media: dict[str, Path], settings: Any, engine: Any, store: Any,
            *kinds: str) -> dict[str, int]:
    """Ingest *kinds* of *media* from a DCIM "device"; their recording ids by kind."""
    folder = tmp_path / "cam" / "DCIM" / "100EVCAM"
    folder.mkdir(parents=True)
    for kind in kinds:
        (folder / NAMES[kind]).write_bytes(media[kind].read_bytes())
    report = ingest_folder(tmp_path / "cam", settings=settings, engine=engine, store=store, options=IngestOptions())
    by_name = {row["original_name"]: row for row in report.recordings}
    assert {by_name[NAMES[k]]["state"] for k in kinds} <= {"archived", "verified"}
    assert all(by_name[NAMES[k]]["media_kind"] == ("video" if k in ("damaged", "colours") else k) for k in kinds)
    return {kind: by_name[NAMES[kind]]["id"] for kind in kinds}


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def any_store(request: pytest.FixtureRequest, settings: Any) -> LocalStore | S3WormStore:
    """The embedded default's local store, then a real S3 Object Lock bucket."""
    if request.param == "local":
        return LocalStore(settings.store_path)
    store: S3WormStore = request.getfixturevalue("s3_store")
    return store


# ----------------------------------------------------------------------------- watching the work folder


class WorkWatcher:
    """Polls a folder (every ~1 ms, on a thread) for the largest file seen in it and the most bytes at once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.largest_file = 0
        self.most_bytes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="work-watcher", daemon=True)

    def _sizes(self) -> list[int]:
        """Sizes of the files under the folder now (a folder or file removed while it is walked is skipped)."""
        sizes = []
        for top, _dirs, files in os.walk(self.folder):  # os.walk skips what vanishes (rglob raised: a flaky test)
            for name in files:
                with suppress(FileNotFoundError):  # removed between listing and stat
                    sizes.append(os.stat(os.path.join(top, name)).st_size)
        return sizes

    def _watch(self) -> None:
        while not self._stop.is_set():
            sizes = self._sizes()
            self.largest_file = max(self.largest_file, *sizes, 0)
            self.most_bytes = max(self.most_bytes, sum(sizes))
            self.samples += 1
            time.sleep(0.001)

    def __enter__(self) -> WorkWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _derived(engine: Any, recording_id: int) -> dict[str, DerivedMedia]:
    with Session(engine) as session:
        return {d.kind: d for d in session.exec(select(DerivedMedia).where(DerivedMedia.recording_id == recording_id))}


def _derived_bytes(store: Any, row: DerivedMedia, name: str) -> bytes:
    assert row.derived_from_sha256
    with store.open_derived(row.derived_from_sha256, name) as fh:
        data: bytes = fh.read()
    return data


def _streams(data: bytes, tmp_path: Path, name: str) -> dict[str, dict[str, Any]]:
    import json

    path = tmp_path / name
    path.write_bytes(data)
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)], capture_output=True,
                         check=True)
    return {s["codec_type"]: s for s in json.loads(out.stdout)["streams"]}


# ----------------------------------------------------------------------------- derive, in place


def test_derived_media_are_made_from_the_original_where_it_is_stored(tmp_path, media, settings, engine, any_store):
    # Given a video, a photo and a recording, archived
    ids = _ingest(tmp_path, media, settings, engine, any_store, "video", "photo", "audio")
    work = tmp_path / "work"
    for kind, recording_id in ids.items():
        # When each is derived while the work folder is watched
        with WorkWatcher(work) as watcher:
            made = derive_recording(engine, any_store, work, recording_id)
        # Then its thumbnail and proxy are made and stored
        assert made == {"video": ["thumbnail", "proxy"], "photo": ["thumbnail"], "audio": ["proxy"]}[kind]
        rows = _derived(engine, recording_id)
        assert set(rows) == set(made)
        # And nothing larger than what was made ever stood in the work folder: the original was never copied there
        # (the old derive copied it whole first: this video is 6x its proxy, the photo 20x its thumbnail)
        original = media[kind].stat().st_size
        made_bytes = max(r.size_bytes for r in rows.values())
        assert watcher.samples >= 3
        assert watcher.largest_file <= made_bytes < original / 2, (kind, watcher.largest_file, made_bytes, original)
        assert list(work.iterdir()) == []
    # The renditions are what browsers play and show
    video = _derived(engine, ids["video"])
    streams = _streams(_derived_bytes(any_store, video["proxy"], "proxy.mp4"), tmp_path, "proxy.mp4")
    assert (streams["video"]["codec_name"], streams["video"]["height"], streams["audio"]["codec_name"]) == (
        "h264", 480, "aac")
    audio = _streams(_derived_bytes(any_store, _derived(engine, ids["audio"])["proxy"], "proxy.m4a"), tmp_path,
                     "proxy.m4a")
    assert set(audio) == {"audio"} and audio["audio"]["codec_name"] == "aac"
    shapes = {}
    for kind in ("video", "photo"):
        jpeg = _derived_bytes(any_store, _derived(engine, ids[kind])["thumbnail"], "thumbnail.jpg")
        thumb = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert thumb is not None
        shapes[kind] = thumb.shape
    assert shapes == {"video": (240, 320, 3), "photo": (180, 320, 3)}


def test_a_damaged_original_is_derive_failed_naming_the_recording(tmp_path, media, settings, engine, any_store):
    (recording_id,) = _ingest(tmp_path, media, settings, engine, any_store, "damaged").values()
    with pytest.raises(DeriveFailed) as failed:
        derive_recording(engine, any_store, tmp_path / "work", recording_id)
    assert (failed.value.recording_id, failed.value.kind) == (recording_id, "thumbnail")
    assert failed.value.reason.startswith("no decodable frame (ffmpeg: "), failed.value.reason
    assert str(failed.value) == f"could not make the thumbnail of recording {recording_id}: {failed.value.reason}"
    assert _derived(engine, recording_id) == {}
    sha = _sha(engine, recording_id)
    assert any_store.verify(sha) == sha  # the evidence is untouched


def test_a_video_thumbnail_is_the_frame_one_second_in_read_in_place_or_by_url(tmp_path, media, settings, engine,
                                                                             any_store):
    # A URL reaches ffmpeg through a concat script, which cannot seek: an input-side -ss there landed seconds off,
    # or past a short clip's end (no frame: a false failure recorded for good). The frame is the same either way.
    (recording_id,) = _ingest(tmp_path, media, settings, engine, any_store, "colours").values()
    assert derive_recording(engine, any_store, tmp_path / "work", recording_id, kinds=("thumbnail",)) == ["thumbnail"]
    with any_store.open_derived(_sha(engine, recording_id), "thumbnail.jpg") as fh:
        frame = cv2.imdecode(np.frombuffer(fh.read(), np.uint8), cv2.IMREAD_COLOR)
    assert frame is not None
    blue, green, red = (int(v) for v in frame[frame.shape[0] // 2, frame.shape[1] // 2])
    assert green > 200 and red < 60 and blue < 60, (blue, green, red)


def test_a_proxy_encode_stopped_while_ffmpeg_starts_up_is_made_on_the_second_run(tmp_path, media, settings, engine,
                                                                                 any_store, monkeypatch):
    # Given an ffmpeg that a SIGTERM reaches while it starts up (exit 1, errors of its own: not the media's fault)
    ids = _ingest(tmp_path, media, settings, engine, any_store, "video", "damaged")
    shim = ffmpeg_stopped_once_at_start(tmp_path / "bin", "libx264")
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    # When a good clip's proxy is made, the failed run is tried once more and the proxy is made
    assert derive_recording(engine, any_store, tmp_path / "work", ids["video"], kinds=("proxy",)) == ["proxy"]
    assert ffmpeg_runs(shim, "libx264") == 2
    with any_store.open_derived(_sha(engine, ids["video"]), "proxy.mp4") as fh:
        (tmp_path / "proxy.mp4").write_bytes(fh.read())
    capture = cv2.VideoCapture(str(tmp_path / "proxy.mp4"))
    assert capture.read()[0], "the proxy plays"
    capture.release()
    # and a file ffmpeg really cannot read fails after its second run, with ffmpeg's last error line
    with pytest.raises(DeriveFailed, match=r"could not make the proxy .*: \w") as failed:
        derive_recording(engine, any_store, tmp_path / "work", ids["damaged"], kinds=("proxy",))
    assert ffmpeg_runs(shim, "libx264") == 4, failed.value
    # one run of make_proxy is one run of ffmpeg (the second one is derive_recording's)
    with pytest.raises(FfmpegRefused):
        make_proxy(media["damaged"], tmp_path / "bad.mp4")
    assert ffmpeg_runs(shim, "libx264") == 5


@pytest.mark.s3
def test_the_second_proxy_run_reads_s3_by_a_url_of_its_own(tmp_path, media, settings, engine, s3_store, monkeypatch):
    # Given an S3 original and an ffmpeg whose first proxy run takes a while, then fails as ffmpeg stopped while it
    # starts up does (exit 1); each run's URL noted from the 0600 script ffmpeg reads it from
    (recording_id,) = _ingest(tmp_path, media, settings, engine, s3_store, "video").values()
    bin_dir = tmp_path / "bin"
    shim = ffmpeg_shim(bin_dir, (
        f'for arg in "$@"; do case "$arg" in *.ffconcat) grep "^file" "$arg" >> "{bin_dir}/urls";; esac; done\n'
        f'case "$*" in *libx264*) if [ ! -e "{bin_dir}/failed" ]; then : > "{bin_dir}/failed"; sleep 1.2; '
        'echo "Error marking filters as finished" >&2; exit 1; fi;; esac\n'))
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    # When the proxy is made
    assert derive_recording(engine, s3_store, tmp_path / "work", recording_id, kinds=("proxy",)) == ["proxy"]
    # Then the second run read the original by a URL signed when it started, valid for the proxy's whole deadline
    # from then: never the first run's URL, which a first run near its deadline would leave expired
    first, second = (parse_qs(urlsplit(line.split("'")[1]).query) for line in
                     (bin_dir / "urls").read_text().splitlines())
    assert ffmpeg_runs(shim, "libx264") == 2
    assert _expires_at(second) >= _expires_at(first) + 1, (first, second)  # signed after the first run's 1.2 s
    assert _expires_at(second) - time.time() >= PROXY_TIMEOUT_S - 60


def _expires_at(query: dict[str, list[str]]) -> float:
    """When a presigned URL expires (epoch seconds): SigV2's Expires, or SigV4's date plus its lifetime."""
    if "X-Amz-Expires" in query:
        signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return signed.timestamp() + float(query["X-Amz-Expires"][0])
    return float(query["Expires"][0])


def _sha(engine: Any, recording_id: int) -> str:
    with Session(engine) as session:
        recording = session.get(Recording, recording_id)
        assert recording is not None
        return recording.sha256


# ----------------------------------------------------------------------------- S3: who reads, and how


class RelayHandler(BaseHTTPRequestHandler):
    """Forwards each request to the relay's upstream as it came (its Host header too: signatures stay valid) and
    the answer back, noting the request. GET answers to libavformat stop after `cut_readers_after` bytes; with
    `hold` set to an event, libavformat's requests wait for it (`held` says one does)."""

    protocol_version = "HTTP/1.1"
    server: S3Relay
    _HOP: ClassVar[set[str]] = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection", "te",
                                "upgrade"}

    def _forward(self) -> None:
        parts = urlsplit(self.path)
        agent = self.headers.get("User-Agent", "")
        self.server.seen.append({"method": self.command, "path": parts.path, "query": parse_qs(parts.query),
                                 "range": self.headers.get("Range"), "agent": agent})
        body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        if agent.startswith("Lavf") and self.server.hold is not None:
            self.server.held.set()  # a reader is waiting here for the test to look around
            self.server.hold.wait(timeout=60)
        upstream = http.client.HTTPConnection(self.server.upstream, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body or None,
                             headers={k: v for k, v in self.headers.items() if k.lower() not in self._HOP})
            answer = upstream.getresponse()
            self.send_response_only(answer.status, answer.reason)
            for key, value in answer.getheaders():
                if key.lower() not in self._HOP:
                    self.send_header(key, value)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            self._copy(answer, self.server.cut_readers_after if agent.startswith("Lavf") else None)
        except (BrokenPipeError, ConnectionResetError):
            pass  # a reader that seeks drops its connection
        finally:
            upstream.close()

    def _copy(self, answer: http.client.HTTPResponse, limit: int | None) -> None:
        sent = 0
        while (chunk := answer.read(65536)) and (limit is None or sent < limit):
            chunk = chunk if limit is None else chunk[:limit - sent]
            self.wfile.write(chunk)
            sent += len(chunk)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

    def log_message(self, format: str, *args: Any) -> None:
        pass


class S3Relay(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), RelayHandler)
        self.upstream = urlsplit(upstream).netloc  # host:port
        self.seen: list[dict[str, Any]] = []
        self.cut_readers_after: int | None = None
        self.hold: threading.Event | None = None
        self.held = threading.Event()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def gets_of(self, key: str) -> list[dict[str, Any]]:
        return [r for r in self.seen if r["method"] == "GET" and r["path"].endswith("/" + key)]


@contextmanager
def relayed(s3_server: Any, s3_store: S3WormStore) -> Iterator[tuple[S3Relay, S3WormStore]]:
    """*s3_store*'s bucket reached through a recording relay: (the relay, a store whose client goes through it)."""
    relay = S3Relay(s3_server.endpoint)
    thread = threading.Thread(target=relay.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        client = make_s3_client(endpoint_url=relay.endpoint, access_key=s3_server.access_key,
                                secret_key=s3_server.secret_key)
        yield relay, S3WormStore(client=client, bucket=s3_store.bucket)
    finally:
        relay.shutdown()
        relay.server_close()
        thread.join(timeout=10)


def _valid_for(query: dict[str, list[str]], asked_at: float) -> float:
    """Seconds a presigned URL was valid for when asked for at *asked_at* (SigV2's Expires or SigV4's)."""
    if "X-Amz-Expires" in query:
        return float(query["X-Amz-Expires"][0])
    return float(query["Expires"][0]) - asked_at


@pytest.mark.s3
def test_s3_readers_fetch_the_original_by_presigned_url_with_ranged_gets(tmp_path, media, settings, engine,
                                                                         s3_server, s3_store):
    (recording_id,) = _ingest(tmp_path, media, settings, engine, s3_store, "video").values()
    key = object_key(_sha(engine, recording_id))
    with relayed(s3_server, s3_store) as (relay, store):
        started = time.time()
        assert derive_recording(engine, store, tmp_path / "work", recording_id) == ["thumbnail", "proxy"]
    gets = relay.gets_of(key)
    # OpenCV and ffmpeg (libavformat) fetched the original themselves, by byte ranges, on a presigned URL
    assert gets and {g["agent"].split("/")[0] for g in gets} == {"Lavf"}, gets
    assert all(g["range"] and g["range"].startswith("bytes=") for g in gets)
    assert all({"Signature", "X-Amz-Signature"} & set(g["query"]) for g in gets)
    # each URL lasts as long as its reader may run (the thumbnail's, or the proxy's deadline), not longer
    lifetimes = sorted({round(_valid_for(g["query"], started)) for g in gets})
    assert lifetimes[0] >= THUMBNAIL_VALID_S - 5 and lifetimes[-1] <= PROXY_TIMEOUT_S + IO_TIMEOUT_S + 5, lifetimes
    assert any(t >= PROXY_TIMEOUT_S for t in lifetimes)
    # and no one downloaded it through boto3 (the old derive's whole copy)
    assert not [r for r in relay.seen if r["path"].endswith("/" + key) and not r["agent"].startswith("Lavf")
                and r["method"] == "GET"]


@pytest.mark.s3
def test_s3_decode_check_reads_by_url_and_a_cut_download_is_not_recorded_as_damage(tmp_path, media, settings,
                                                                                   engine, s3_server, s3_store,
                                                                                   caplog):
    ids = _ingest(tmp_path, media, settings, engine, s3_store, "video", "audio")
    work = tmp_path / "work"
    with relayed(s3_server, s3_store) as (relay, store):
        # A clean read: the verdict comes from ffmpeg reading the URL, and nothing is written to the work folder
        with WorkWatcher(work) as watcher:
            assert check_recording(engine, store, work, ids["video"]) == "ok"
        assert watcher.largest_file == 0
        assert {g["agent"].split("/")[0] for g in relay.gets_of(object_key(_sha(engine, ids["video"])))} >= {"Lavf"}
        # A download cut short looks like damage to ffmpeg; the check confirms from a local copy and finds none
        relay.cut_readers_after = 20_000
        with caplog.at_level(logging.INFO, logger="ingest.decode_check"):
            assert check_recording(engine, store, work, ids["audio"]) == "ok"
    confirming = [r.getMessage() for r in caplog.records if "confirming from a local copy" in r.getMessage()]
    assert len(confirming) == 1 and " found it damaged (" in confirming[0]
    assert "Signature" not in confirming[0]  # the URL's credential stays out of the log
    with Session(engine) as session:
        assert [(r.check, r.status) for r in integrity_history(session, ids["audio"])] == [
            ("ingest", "ok"), ("decode", "ok")]
    assert list(work.iterdir()) == []  # the confirmation's copy is gone


def _command_lines() -> dict[int, list[str]]:
    """Every process's command line, as any local user reads it (`ps`, /proc/PID/cmdline)."""
    lines = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):
                lines[int(entry.name)] = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
    return lines


@pytest.mark.s3
def test_no_command_line_shows_a_presigned_url_while_ffmpeg_reads_the_original(tmp_path, media, settings, engine,
                                                                               s3_server, s3_store):
    # A presigned URL is a credential to the original for as long as it is valid, and any user of the machine reads
    # every process's command line. Caught while ffmpeg is connected and waiting for the object's bytes.
    (recording_id,) = _ingest(tmp_path, media, settings, engine, s3_store, "video").values()
    sha = _sha(engine, recording_id)
    scripts: list[str] = []
    with relayed(s3_server, s3_store) as (relay, store):
        def proxy() -> None:
            with store.read_in_place(sha, valid_s=120) as url:
                make_proxy(url, tmp_path / "proxy.mp4")

        def decode() -> None:
            assert check_recording(engine, store, tmp_path / "work", recording_id) == "ok"

        for reader in (proxy, decode):
            relay.hold = threading.Event()
            relay.held.clear()
            pool = ThreadPoolExecutor(max_workers=1)
            done = pool.submit(reader)
            try:
                assert relay.held.wait(60), f"{reader.__name__}: ffmpeg never asked for the original"
                query = relay.seen[-1]["query"]
                (signature,) = query.get("X-Amz-Signature", query.get("Signature"))  # SigV4 or SigV2
                lines = _command_lines()
                ffmpegs = [line for pid, line in lines.items()  # an argument that runs ffmpeg (setpriv's too),
                           if any(Path(arg).name == "ffmpeg" for arg in line)  # started by this test (not by
                           and parent_of(pid) == os.getpid()]  # another test run on the same machine)
                assert len(ffmpegs) == 1, lines
                forms = {signature, quote(signature, safe="")}  # as signed, and as it stands in the URL
                assert not [line for line in lines.values() if any(f in arg for f in forms for arg in line)]
                script = Path(ffmpegs[0][ffmpegs[0].index("-i") + 1])
                assert script.stat().st_mode & 0o777 == 0o600  # the URL's file: this user's alone
                assert any(f in script.read_text() for f in forms)
                scripts.append(str(script))
            finally:
                relay.hold.set()
                pool.shutdown(wait=False)
            done.result(timeout=120)  # the reader's own failure, if any, raised here
    assert scripts and not [name for name in scripts if Path(name).exists()]  # removed once ffmpeg is done
    with Session(engine) as session:
        assert [(r.check, r.status) for r in integrity_history(session, recording_id)] == [
            ("ingest", "ok"), ("decode", "ok")]



# ----------------------------------------------------------------------------- readers on a server that stalls


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A URL on 127.0.0.1 whose server accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/bucket/clip?X-Amz-Signature=secret-signature"
    finally:
        listener.close()


def test_readers_of_a_url_give_up_at_the_io_timeout_not_the_deadline(tmp_path, silent_server, monkeypatch):
    monkeypatch.setattr(derive, "IO_TIMEOUT_S", 1.0)
    started = time.monotonic()
    with pytest.raises(ValueError, match="Connection timed out") as thumbnail:
        video_thumbnail(silent_server, tmp_path / "thumbnail.jpg")
    assert time.monotonic() - started < 15  # two positions tried, each read given up after IO_TIMEOUT_S
    assert str(thumbnail.value) == f"no decodable frame (ffmpeg: {silent_server.split('?')[0]}: Connection timed out)"
    started = time.monotonic()
    with pytest.raises(ValueError, match="Connection timed out") as failed:
        make_proxy(silent_server, tmp_path / "proxy.mp4", timeout_s=120)
    assert time.monotonic() - started < 15  # -rw_timeout, long before the 120 s deadline
    # the URL is named without its query string (a presigned URL's credential)
    assert str(failed.value) == f"{silent_server.split('?')[0]}: Connection timed out"
