"""The station's record of catalogued device files (ingest.known_files): pure file tests, no catalogue."""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pytest

from ingest import known_files
from ingest.known_files import KnownFile, forget_paths, load, path_for, remember, rewrite
from tests.helpers.fsyncs import spy_fsyncs

SERIAL = "A123456"


def _entry(serial: str, n: int, *, path: str | None = None, size: int = 1000,
           mtime: int = 1_700_000_000_000_000_000) -> KnownFile:
    sha = hashlib.sha256(f"{serial}/{n}".encode("utf-8", "surrogateescape")).hexdigest()
    return KnownFile.of(serial, device_path=path or f"DCIM/100/CLIP{n:04d}.MP4", size_bytes=size + n,
                        mtime_ns=mtime + n, sha256=sha, recording_id=n + 1)


def _files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def test_remembered_files_load_back_by_key_and_nothing_else_matches(tmp_path):
    staging = tmp_path / "staging"
    entries = [_entry(SERIAL, n) for n in range(5)]
    remember(staging, SERIAL, entries[:3])
    remember(staging, SERIAL, entries[3:])
    known = load(staging, SERIAL)
    assert known == {e.key: e for e in entries}
    # The key is what a catalogue sighting matches on: a change of path, size or mtime is another file.
    e = entries[0]
    assert known_files.key(SERIAL, e.device_path, e.size_bytes, e.mtime_ns) in known
    assert known_files.key(SERIAL, e.device_path, e.size_bytes + 1, e.mtime_ns) not in known
    assert known_files.key(SERIAL, e.device_path, e.size_bytes, e.mtime_ns + 1) not in known
    assert known_files.key(SERIAL, e.device_path + "x", e.size_bytes, e.mtime_ns) not in known
    # One small file per device, under staging/known/, named by a hash of the serial.
    assert _files_under(staging) == {staging / "known", path_for(staging, SERIAL)}
    assert path_for(staging, SERIAL).name == hashlib.sha256(SERIAL.encode()).hexdigest()[:24] + ".jsonl"


def test_a_device_without_a_record_knows_nothing(tmp_path):
    assert load(tmp_path / "staging", SERIAL) == {}
    assert not (tmp_path / "staging").exists()  # loading creates nothing


def test_remember_is_fsynced_before_it_returns(tmp_path, monkeypatch):
    synced = spy_fsyncs(monkeypatch)
    remember(tmp_path, SERIAL, [_entry(SERIAL, 1)])
    assert str(path_for(tmp_path, SERIAL)) in synced


def test_a_torn_last_line_is_ignored_and_the_next_append_is_not_glued_to_it(tmp_path):
    first, second, third = (_entry(SERIAL, n) for n in range(3))
    remember(tmp_path, SERIAL, [first, second])
    path = path_for(tmp_path, SERIAL)
    line = json.dumps(vars(third))
    with path.open("a") as fh:  # a crash mid-append: half a line, no newline
        fh.write(line[: len(line) // 2])
    assert set(load(tmp_path, SERIAL)) == {first.key, second.key}
    # The station runs on and remembers more: the torn half never swallows the new entry.
    fourth = _entry(SERIAL, 4)
    remember(tmp_path, SERIAL, [fourth])
    assert set(load(tmp_path, SERIAL)) == {first.key, second.key, fourth.key}


@pytest.mark.parametrize("damage", [
    "not json at all",
    "[1, 2, 3]",
    "null",
    '{"key": "x"}',
    "DAMAGED_FIELD",
])
def test_damaged_lines_match_nothing(tmp_path, damage):
    good = _entry(SERIAL, 1)
    bad = _entry(SERIAL, 2)
    raw = vars(bad).copy()
    if damage == "DAMAGED_FIELD":
        raw["size_bytes"] += 1  # the key no longer says what the fields say
        damage = json.dumps(raw)
    path = path_for(tmp_path, SERIAL)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(vars(good)) + "\n" + damage + "\n")
    assert load(tmp_path, SERIAL) == {good.key: good}


@pytest.mark.parametrize(("field", "value"), [
    ("recording_id", "7"), ("recording_id", True), ("recording_id", 0), ("recording_id", -3),
    ("sha256", "ab" * 31), ("sha256", "AB" * 32), ("sha256", None), ("size_bytes", -1), ("size_bytes", 1.5),
    ("extra", "field"),
])
def test_wrong_types_match_nothing(tmp_path, field, value):
    good = _entry(SERIAL, 1)
    raw = {**vars(good), field: value}
    path = path_for(tmp_path, SERIAL)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(raw) + "\n")
    assert load(tmp_path, SERIAL) == {}


def test_a_later_line_for_the_same_file_wins(tmp_path):
    old = _entry(SERIAL, 1)
    new = KnownFile.of(SERIAL, device_path=old.device_path, size_bytes=old.size_bytes, mtime_ns=old.mtime_ns,
                       sha256="f" * 64, recording_id=99)
    remember(tmp_path, SERIAL, [old])
    remember(tmp_path, SERIAL, [new])
    assert load(tmp_path, SERIAL) == {old.key: new}


def test_two_serials_are_kept_apart_even_for_the_same_path_size_and_time(tmp_path):
    a = _entry("A-1", 1, path="DCIM/CLIP.MP4")
    b = _entry("B-2", 1, path="DCIM/CLIP.MP4")
    assert (a.device_path, a.size_bytes, a.mtime_ns) == (b.device_path, b.size_bytes, b.mtime_ns)
    assert a.key != b.key
    remember(tmp_path, "A-1", [a])
    remember(tmp_path, "B-2", [b])
    assert load(tmp_path, "A-1") == {a.key: a} and load(tmp_path, "B-2") == {b.key: b}
    assert path_for(tmp_path, "A-1") != path_for(tmp_path, "B-2")
    # A line copied into the other device's file (or two serials whose file names collide) matches nothing there.
    with path_for(tmp_path, "B-2").open("a") as fh:
        fh.write(json.dumps(vars(a)) + "\n")
    assert load(tmp_path, "B-2") == {b.key: b}
    # Compacting one device leaves the other alone.
    assert rewrite(tmp_path, "A-1", set()) == 0
    assert load(tmp_path, "B-2") == {b.key: b} and load(tmp_path, "A-1") == {}


@pytest.mark.parametrize("serial", [
    "../x", "../../../../etc/passwd", "/abs/olute", "a/b/c", "x" * 200, "é" * 100, "nul\0byte", "..", ".",
    "", "bad\udcffbyte", "new\nline",
])
def test_hostile_serials_stay_data(tmp_path, serial):
    staging = tmp_path / "staging"
    staging.mkdir()
    outside = _files_under(tmp_path)
    entry = _entry(serial, 1, path="../../escape\udcfe.mp4")
    remember(staging, serial, [entry])
    assert load(staging, serial) == {entry.key: entry}
    path = path_for(staging, serial)
    assert path.parent == staging / "known" and len(path.name) == len("0" * 24 + ".jsonl")
    assert _files_under(tmp_path) - outside == {staging / "known", path}
    assert forget_paths(staging, serial, ["../../escape\udcfe.mp4"]) == 1
    assert _files_under(tmp_path) == outside  # the last entry gone: the file and the empty folder too


def test_compaction_keeps_only_the_files_the_device_still_holds(tmp_path):
    entries = [_entry(SERIAL, n) for n in range(200)]
    for n in range(0, 200, 20):  # appended after many commits
        remember(tmp_path, SERIAL, entries[n:n + 20])
    remember(tmp_path, SERIAL, entries[:50])  # the same files remembered again at a later dock
    path = path_for(tmp_path, SERIAL)
    before = path.stat().st_size
    still = {e.key for e in entries[150:]} | {"0" * 40}  # a key the record never had changes nothing
    assert rewrite(tmp_path, SERIAL, still) == 50
    assert load(tmp_path, SERIAL) == {e.key: e for e in entries[150:]}
    assert path.stat().st_size < before / 4
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left
    # Each file once: compacting again changes nothing.
    size = path.stat().st_size
    assert rewrite(tmp_path, SERIAL, still) == 50 and path.stat().st_size == size
    # Nothing left: the record goes.
    assert rewrite(tmp_path, SERIAL, set()) == 0
    assert not path.exists()


def test_a_crash_during_compaction_leaves_the_old_record_whole(tmp_path, monkeypatch):
    entries = [_entry(SERIAL, n) for n in range(10)]
    remember(tmp_path, SERIAL, entries)
    path = path_for(tmp_path, SERIAL)
    original = path.read_bytes()

    def crash(src: object, dst: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="Input/output error"):
        rewrite(tmp_path, SERIAL, {entries[0].key})
    assert path.read_bytes() == original
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_forget_paths_drops_cleared_files(tmp_path):
    a, b = _entry(SERIAL, 1), _entry(SERIAL, 2)
    remember(tmp_path, SERIAL, [a, b])
    assert forget_paths(tmp_path, SERIAL, []) == 0
    assert forget_paths(tmp_path, SERIAL, [a.device_path, "not/there.mp4"]) == 1
    assert load(tmp_path, SERIAL) == {b.key: b}


def test_appends_from_many_threads_beside_compaction_lose_nothing_and_tear_nothing(tmp_path):
    per_thread = 100
    batches = [[_entry(SERIAL, t * per_thread + n) for n in range(per_thread)] for t in range(6)]
    everything = {e.key for batch in batches for e in batch}
    stop = threading.Event()

    def add(batch: list[KnownFile]) -> None:
        for n in range(0, per_thread, 5):
            remember(tmp_path, SERIAL, batch[n:n + 5])

    def compact() -> None:
        while not stop.is_set():
            rewrite(tmp_path, SERIAL, everything)

    compactor = threading.Thread(target=compact)
    compactor.start()
    writers = [threading.Thread(target=add, args=(batch,)) for batch in batches]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    compactor.join()
    assert set(load(tmp_path, SERIAL)) == everything
    lines = path_for(tmp_path, SERIAL).read_text().splitlines()
    assert all(known_files._parse(SERIAL, line) is not None for line in lines)
