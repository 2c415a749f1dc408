"""A write killed half-way leaves nothing behind for good: the store's scratch is swept (`sweep_scratch`).

The writer is a real second process putting a file whose bytes come through a FIFO, so the test decides how far
it gets before `kill -9`: the local store is left a half-written scratch file, S3 an open multipart upload with
a part in it. The state a kill between naming an object and removing its scratch name leaves (a second hard link
to the object in `incoming/`) is made on disk as that kill leaves it: the window is a few instructions wide.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from storage import LocalStore, S3WormStore, SealBroken, object_key
from storage.backends.local_tree import stat_mode
from tests.conftest import _missing, wait_for

REPO = Path(__file__).resolve().parents[2]
UNTIL = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
HOUR = timedelta(hours=1)

_PUT = """
import json, sys
from datetime import datetime
from pathlib import Path
from typing import Any
spec = json.loads(sys.argv[1])
if spec["kind"] == "local":
    from storage import LocalStore
    store = LocalStore(Path(spec["root"]))
else:
    from storage import S3WormStore, make_s3_client
    client = make_s3_client(endpoint_url=spec["endpoint"], access_key=spec["access_key"],
                            secret_key=spec["secret_key"])
    store = S3WormStore(client=client, bucket=spec["bucket"], multipart_threshold_bytes=8 << 20,
                        part_size_bytes=5 << 20, max_concurrency=1)
store.put_file(Path(spec["source"]), sha256=spec["sha256"], size_bytes=spec["size"],
               retain_until=datetime.fromisoformat(spec["until"]))
"""


def _killed_mid_put(spec: dict[str, object], fifo: Path, written_until) -> None:
    """Run a put in another process, feed it 6 MiB through *fifo*, wait until *written_until()*, then kill -9 it."""
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writer = subprocess.Popen([sys.executable, "-c", _PUT, json.dumps({**spec, "source": str(fifo)})], env=env)
    try:
        with fifo.open("wb") as feed:
            feed.write(os.urandom(6 << 20))
            feed.flush()
            wait_for(written_until, 60, "the killed writer's first bytes in the store's scratch")
            writer.send_signal(signal.SIGKILL)
            writer.wait(30)
    except BrokenPipeError:
        pytest.fail(f"the writer ended before it was killed (exit {writer.wait(30)})")
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(30)


def _stored(store: LocalStore, tmp_path: Path) -> tuple[str, Path]:
    """4 KiB of new bytes put in *store*: (their SHA-256, the object's file)."""
    source = tmp_path / "rec.bin"
    source.write_bytes(os.urandom(4096))
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    store.put_file(source, sha256=sha, size_bytes=4096, retain_until=UNTIL)
    return sha, store.root / "objects" / object_key(sha)


def _uploads(store: S3WormStore) -> list[dict[str, Any]]:
    return list(store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []))


def test_a_local_write_killed_half_way_is_swept_once_stale_and_not_before(tmp_path):
    store = LocalStore(tmp_path / "worm")
    incoming = store.root / "incoming"
    sha = hashlib.sha256(b"never finished").hexdigest()
    spec = {"kind": "local", "root": str(store.root), "sha256": sha, "size": 64 << 20, "until": UNTIL.isoformat()}
    _killed_mid_put(spec, tmp_path / "device.fifo",
                    lambda: any(p.stat().st_size >= 4 << 20 for p in incoming.iterdir()))
    (left,) = incoming.iterdir()
    assert left.name.startswith(sha)

    size, now = left.stat().st_size, datetime.now(UTC)
    assert store.sweep_scratch(older_than=HOUR, now=now) == []  # it could be a live write: kept
    assert left.exists()
    (gone,) = store.sweep_scratch(older_than=HOUR, now=now + 2 * HOUR)
    assert (gone.name, gone.size_bytes) == (f"incoming/{left.name}", size) and size >= 4 << 20
    assert "stopped" in gone.reason and not left.exists() and not store.exists(sha)

    # The store works as before: the same bytes stored whole this time.
    source = tmp_path / "rec.bin"
    source.write_bytes(b"never finished")
    store.put_file(source, sha256=sha, size_bytes=14, retain_until=UNTIL)
    assert store.verify(sha) == sha and list(incoming.iterdir()) == []


def test_a_second_name_left_by_a_killed_store_is_healed_at_once_and_a_foreign_link_is_still_named(tmp_path):
    store = LocalStore(tmp_path / "worm")
    sha, obj = _stored(store, tmp_path)

    # A kill between os.link(scratch, object) and the scratch name's unlink leaves this:
    os.link(obj, store.root / "incoming" / f"{sha}.{uuid.uuid4().hex}")
    assert obj.stat().st_nlink == 2
    assert store.head(sha).seal_problems == ()  # read, found to be the killed write's name, removed
    assert obj.stat().st_nlink == 1 and list((store.root / "incoming").iterdir()) == []

    os.link(obj, store.root / "incoming" / f"{sha}.{uuid.uuid4().hex}")
    assert store.verify(sha) == sha and obj.stat().st_nlink == 1

    os.link(obj, store.root / "incoming" / f"{sha}.{uuid.uuid4().hex}")
    (gone,) = store.sweep_scratch(older_than=HOUR, now=datetime.now(UTC))  # young, but it can only be a leftover
    assert "second name of stored object" in gone.reason and obj.stat().st_nlink == 1

    # A second name anywhere else is someone's, not the store's: still reported, never removed.
    foreign = tmp_path / "second-name"
    os.link(obj, foreign)
    with pytest.raises(SealBroken, match="2 hard links"):
        store.verify(sha)
    assert any("2 hard links" in p for p in store.head(sha).seal_problems) and foreign.exists()
    # Nor is a file in incoming that only carries the object's name.
    decoy = store.root / "incoming" / f"{sha}.{uuid.uuid4().hex}"
    decoy.write_bytes(b"not the object")
    assert store.sweep_scratch(older_than=HOUR, now=datetime.now(UTC)) == [] and decoy.exists()


def test_the_store_writer_sweeps_by_its_own_clock_and_no_client_cuts_a_live_write_short(tmp_path):
    from storage.writer import init_store, serve_in_thread

    root = tmp_path / "worm"
    init_store(root, immutable=False)
    server, thread = serve_in_thread(root)
    try:
        store = LocalStore(root, writer=True)  # as the service account, which may not write the store
        sha, _obj = _stored(store, tmp_path)
        left = root / "incoming" / f"{'a' * 64}.{uuid.uuid4().hex}"
        left.write_bytes(b"half")  # young: it may be another client's live write
        second = root / "incoming" / f"{sha}.{uuid.uuid4().hex}"
        os.link(root / "objects" / object_key(sha), second)
        # A caller's clock far ahead, or an age of 0, removes no young file: the writer's clock and floor decide.
        (gone,) = store.sweep_scratch(older_than=timedelta(0), now=datetime.now(UTC) + 10 * HOUR)
        assert gone.name == f"incoming/{second.name}" and not second.exists() and left.exists()
        assert store.sweep_scratch(older_than=HOUR, now=datetime.now(UTC) + 10 * HOUR) == [] and left.exists()
        with pytest.raises(ValueError, match="not a number of seconds"):
            store._client.call({"op": "sweep_scratch", "older_than_s": "nan"})
        assert store.verify(sha) == sha
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_odd_entries_in_the_scratch_folder_are_left_alone_and_never_stop_a_sweep(tmp_path):
    store = LocalStore(tmp_path / "worm")
    incoming = store.root / "incoming"
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not the store's")
    (incoming / f"{'c' * 64}.{uuid.uuid4().hex}").mkdir()
    (incoming / f"{'d' * 64}.{uuid.uuid4().hex}").symlink_to(outside)
    os.mkfifo(incoming / "fifo")
    left = incoming / f"{'e' * 64}.{uuid.uuid4().hex}"
    left.write_bytes(b"half")
    (gone,) = store.sweep_scratch(older_than=HOUR, now=datetime.now(UTC) + 2 * HOUR)
    assert gone.name == f"incoming/{left.name}"
    assert sorted(p.name[:1] for p in incoming.iterdir()) == ["c", "d", "f"]
    assert outside.read_bytes() == b"not the store's"


def test_a_second_name_of_a_manifest_is_healed_and_an_immutable_object_is_sealed_again(tmp_path):
    from storage import manifest_key
    from storage.hardening import has_capability, is_immutable, set_immutable

    store = LocalStore(tmp_path / "worm")
    sha = hashlib.sha256(b"x").hexdigest()
    source = tmp_path / "x"
    source.write_bytes(b"x")
    store.put_file(source, sha256=sha, size_bytes=1, retain_until=UNTIL)
    store.put_manifests([(sha, 1, b'{"r": 1}', UNTIL), (sha, 2, b'{"r": 2}', UNTIL)])
    os.link(store.root / manifest_key(sha, 2), store.root / "incoming" / f"once.{uuid.uuid4().hex}")
    assert store.verify(sha) == sha and list((store.root / "incoming").iterdir()) == []

    if not has_capability():
        _missing("CAP_LINUX_IMMUTABLE (sealing with chattr +i; the rest of this test ran)")
    immutable = LocalStore(tmp_path / "immutable", immutable=True)
    immutable.put_file(source, sha256=sha, size_bytes=1, retain_until=UNTIL)
    obj = immutable.root / "objects" / object_key(sha)
    # A write killed after naming the object, before removing its scratch name and sealing: flag off, folder open.
    set_immutable(obj, False)
    set_immutable(obj.parent, False)
    os.chmod(obj.parent, 0o755)
    os.link(obj, immutable.root / "incoming" / f"{sha}.{uuid.uuid4().hex}")
    assert immutable.head(sha).seal_problems == ()
    assert is_immutable(obj) and is_immutable(obj.parent) and stat_mode(obj.parent) == 0o555
    assert immutable.verify(sha) == sha


@pytest.mark.s3
def test_an_s3_upload_killed_half_way_is_aborted_once_stale_and_not_before(s3_store, s3_server, tmp_path):
    sha = hashlib.sha256(b"never finished").hexdigest()
    spec = {"kind": "s3", "endpoint": s3_server.endpoint, "access_key": s3_server.access_key,
            "secret_key": s3_server.secret_key, "bucket": s3_store.bucket, "sha256": sha, "size": 64 << 20,
            "until": UNTIL.isoformat()}
    parts = lambda: [p for u in _uploads(s3_store) for p in s3_store.client.list_parts(  # noqa: E731
        Bucket=s3_store.bucket, Key=u["Key"], UploadId=u["UploadId"]).get("Parts", [])]
    _killed_mid_put(spec, tmp_path / "device.fifo", lambda: len(parts()) >= 1)
    (upload,) = _uploads(s3_store)
    assert upload["Key"].endswith(sha)

    now = datetime.now(UTC)
    assert s3_store.sweep_scratch(older_than=HOUR, now=now) == [] and len(_uploads(s3_store)) == 1
    (gone,) = s3_store.sweep_scratch(older_than=HOUR, now=now + 2 * HOUR)
    assert upload["UploadId"] in gone.name and "never completed" in gone.reason
    assert _uploads(s3_store) == [] and not s3_store.exists(sha)
    assert s3_store.sweep_scratch(older_than=timedelta(0), now=now + 2 * HOUR) == []


def _stored_with_leftovers(store: LocalStore, tmp_path: Path) -> tuple[Path, Path]:
    """An object with the second name a killed store left, and a half-written scratch file: (object, that file)."""
    sha, obj = _stored(store, tmp_path)
    os.link(obj, store.root / "incoming" / f"{sha}.{uuid.uuid4().hex}")
    half = store.root / "incoming" / f"{'b' * 64}.{uuid.uuid4().hex}"
    half.write_bytes(b"half a recording")
    return obj, half


def test_station_watch_sweeps_the_store_scratch_at_start_and_on_its_staging_sweep(tmp_path):
    from ingest.config import Settings
    from tests.conftest import running_station

    (tmp_path / "media").mkdir()
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "home"),
                                  "EVIDENCE_MOUNT_ROOTS": str(tmp_path / "media"),
                                  "EVIDENCE_STATUS_ADDR": "127.0.0.1:0", "EVIDENCE_STAGING_SWEEP_S": "0.2",
                                  "EVIDENCE_STORE_SCRATCH_AGE_S": "1"})
    obj, half = _stored_with_leftovers(LocalStore(settings.store_path), tmp_path)
    with running_station(settings):
        wait_for(lambda: obj.stat().st_nlink == 1, 30, "the killed write's second name removed")
        wait_for(lambda: not half.exists(), 30, "the half-written file removed once a second old")
    assert list((settings.store_path / "incoming").iterdir()) == []


def test_evidence_ingest_sweeps_what_an_earlier_killed_ingest_left(tmp_path):
    from ingest.config import Settings
    from ingest.pipeline import IngestOptions
    from ingest.queue.workers import run_ingest

    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "home")})
    obj, half = _stored_with_leftovers(LocalStore(settings.store_path), tmp_path)
    device = tmp_path / "device" / "DCIM" / "100TEST"
    device.mkdir(parents=True)
    (device / "NOTE0001.TXT").write_bytes(b"a file on the device")
    report = run_ingest(device.parent.parent, settings, IngestOptions(), derive="later")
    assert report.new_count == 1 and obj.stat().st_nlink == 1
    assert half.exists()  # young: it could be another process's live write


class _OldWriterStore(LocalStore):
    """The real local store as a client of a store writer of an older release sees it: no sweep_scratch there."""

    def sweep_scratch(self, *, older_than, now):
        raise ValueError("the store writer does not do 'sweep_scratch'")


def test_a_sweep_the_store_refuses_is_logged_and_never_stops_its_caller(tmp_path, caplog):
    from ingest.station.staging_sweep import sweep_store_scratch

    assert sweep_store_scratch(_OldWriterStore(tmp_path / "worm"), older_than_s=3600) == []
    assert "Store scratch not swept" in caplog.text and "does not do 'sweep_scratch'" in caplog.text
