"""A redacted copy is a recording of its own (issue 18, part 2): made from the stored original without touching it,
kept with its own SHA-256 in WORM storage, signed in a manifest naming the original and what was hidden, versioned,
refused to whoever may not redact or read the original (and the refusal recorded), and a catalogue row edited to
pass a copy off as another's (or an original as a copy) is found by verify. On SQLite and PostgreSQL, on the local
WORM store and SeaweedFS."""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np
import piexif
import pytest
from sqlalchemy import text
from sqlmodel import Session, col, select

from catalog import CustodyEvent, CustodyKind, Recording, open_catalog
from catalog.access import AccessRefused
from catalog.classification import classify_recordings
from catalog.manifests import read_manifest
from catalog.signing import load_or_create_key
from catalog.users import add_user
from catalog.verification import verify_archive
from ingest.config import Settings
from ingest.pipeline import ingest_folder
from ingest.redaction import RedactionInvalid, RedactionSpec, parse_box, parse_mute
from ingest.redaction.derivative import redact_recording
from tests.ingest.test_redaction import _max_volume

W, H = 320, 240


def _device(root: Path) -> Path:
    """A camera's card: a clip with a busy moving picture and a steady tone, and a photo full of detail, with the
    tags cameras write (creation time, place; EXIF time)."""
    folder = root / "DCIM" / "100EVCAM"
    folder.mkdir(parents=True)
    life = f"life=s={W}x{H}:rate=25:ratio=0.5:mold=0:seed=7,format=yuv420p"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", f"{life},trim=duration=3",
                    "-f", "lavfi", "-i", "sine=frequency=1000:duration=3", "-c:v", "libx264", "-crf", "18",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", "-metadata",
                    "creation_time=2026-11-20T06:10:00Z", "-metadata", "location=+31.2304+121.4737/",
                    str(folder / "MVI_0001.MP4")], check=True)
    photo = folder / "IMG_0002.JPG"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", life, "-frames:v", "1", "-q:v", "2",
                    str(photo)], check=True)
    piexif.insert(piexif.dump({"0th": {piexif.ImageIFD.Make: b"EvidenceCam"},
                               "Exif": {piexif.ExifIFD.DateTimeOriginal: b"2026:11:20 14:06:00"}}), str(photo))
    return root


def _gray(path: Path, at_s: float | None = None) -> np.ndarray:
    seek = ["-ss", f"{at_s}"] if at_s is not None else []
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", *seek, "-i", str(path), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(H, W).astype(np.float64)


def _flat_blocks(picture: np.ndarray, x: int, y: int, size: int) -> float:
    """The largest spread of grey inside the 16 px blocks of a square region (1-2 px left to the encoder at edges)."""
    region = picture[y:y + size, x:x + size]
    return max(float(region[r + 2:r + 14, c + 2:c + 14].std()) for r in range(0, size, 16) for c in range(0, size, 16))


def _fetch(store, sha256: str, dest: Path) -> Path:
    with store.open(sha256) as source:
        dest.write_bytes(source.read())
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == sha256
    return dest


def _events(session: Session, kind: CustodyKind, recording_id: int | None = None) -> list[CustodyEvent]:
    query = select(CustodyEvent).where(CustodyEvent.kind == kind.value)
    if recording_id is not None:
        query = query.where(CustodyEvent.recording_id == recording_id)
    return list(session.exec(query.order_by(col(CustodyEvent.id))))


@pytest.mark.usefixtures("ffmpeg_available")
def test_a_redacted_copy_is_kept_beside_the_untouched_original_and_names_it(tmp_path, catalog_url, worm_store):
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_DATABASE_URL": catalog_url})
    engine = open_catalog(catalog_url)
    try:
        report = ingest_folder(_device(tmp_path / "card"), settings=settings, engine=engine, store=worm_store)
        assert report.errors == [] and len(report.recordings) == 2, report
        key = load_or_create_key(settings.station_key_path)
        with Session(engine) as session:
            clip = session.exec(select(Recording).where(Recording.original_name == "MVI_0001.MP4")).one()
            photo = session.exec(select(Recording).where(Recording.original_name == "IMG_0002.JPG")).one()
            clerk = add_user(session, "clerk", roles=["clerk"], by="test")
            officer = add_user(session, "officer", roles=["officer"], by="test", officer_number="000000")
            elsewhere = add_user(session, "U9-supervisor", roles=["supervisor"], by="test", units=["U9"])
            supervisor = add_user(session, "supervisor", roles=["supervisor"], by="test")
            session.commit()
            # It shows a bystander: personal privacy, which a supervisor may not play without a grant
            classify_recordings(session, clerk, [clip], to="personal", reason="拍到围观群众")
            session.commit()
            original_sha, rows_before = clip.sha256, session.exec(select(Recording)).all()
            spec = RedactionSpec(boxes=(parse_box("1-2:96,64,96,96"),), mutes=(parse_mute("0.5-1.5"),))

            # Whoever may not redact, or may not read the original, is refused, and the refusal is recorded
            for who, why in ((officer, "role"), (elsewhere, "scope"), (supervisor, "class")):
                with pytest.raises(AccessRefused):
                    redact_recording(session, worm_store, settings, clip, spec, user=who, reason="公示前遮蔽",
                                     key=key, via="test")
                refused = _events(session, CustodyKind.ACCESS_REFUSED)
                assert refused and refused[-1].actor == who.name and refused[-1].details["why"] == why
                assert refused[-1].recording_id == clip.id  # on the original's own custody, whatever the reason
                assert refused[-1].details["action"] == "redact"
            # A region outside the picture is refused before anything is read
            outside = RedactionSpec(boxes=(parse_box("0-1:300,0,64,64"),))
            with pytest.raises(RedactionInvalid, match="outside the 320×240 picture"):
                redact_recording(session, worm_store, settings, clip, outside, user=clerk, reason="公示前遮蔽",
                                 key=key, via="test")
            assert len(session.exec(select(Recording)).all()) == len(rows_before)
            assert _events(session, CustodyKind.ACCESSED) == []

            # The clerk makes a copy: a new recording, archived, with its own hash
            made = redact_recording(session, worm_store, settings, clip, spec, user=clerk, reason="公示前遮蔽",
                                    key=key, via="test")
            copy = made.recording
            assert made.new and made.version == 1 and copy.redacted_from_id == clip.id
            assert copy.sha256 != original_sha and copy.state in ("archived", "verified")
            assert copy.captured_start == clip.captured_start and copy.sensitivity == "personal"
            # the original is as it was, in the catalogue and in the store
            session.refresh(clip)
            assert clip.sha256 == original_sha and clip.redacted_from_id is None
            original_file = _fetch(worm_store, original_sha, tmp_path / "original.mp4")
            copy_file = _fetch(worm_store, copy.sha256, tmp_path / "copy.mp4")
            # and the copy hides what was asked: each block flat where the original has detail, sound silent
            assert _flat_blocks(_gray(copy_file, 1.5), 96, 64, 96) < 3.0
            assert _flat_blocks(_gray(original_file, 1.5), 96, 64, 96) > 15.0
            assert _max_volume(copy_file, 0.7, 0.6) < -60.0 < _max_volume(original_file, 0.7, 0.6)
            assert _max_volume(copy_file, 2.0, 0.5) > -20.0  # the rest of the sound is kept

            # Its signed manifest names the original and the whole specification
            body = read_manifest(worm_store, copy.sha256, 1)
            assert body["redaction"]["original_sha256"] == original_sha
            assert body["redaction"]["original_id"] == clip.id
            assert body["redaction"]["spec"]["boxes"] == [{"start_s": 1.0, "end_s": 2.0, "x": 96, "y": 64,
                                                           "w": 96, "h": 96}]
            assert body["redaction"]["spec"]["mutes"] == [{"start_s": 0.5, "end_s": 1.5}]
            assert body["redaction"]["by"] == "clerk" and body["redaction"]["reason"] == "公示前遮蔽"
            # Its custody: made by a `redacted` event; the original read once, for the redaction, with the reason
            made_events = _events(session, CustodyKind.REDACTED, copy.id)
            assert len(made_events) == 1 and made_events[0].details["original_sha256"] == original_sha
            reads = _events(session, CustodyKind.ACCESSED, clip.id)
            assert len(reads) == 1 and reads[0].details["for"] == "redaction"
            assert reads[0].details["reason"] == "公示前遮蔽" and reads[0].actor == "clerk"

            # A second redaction is a second version; the first is kept
            again = redact_recording(session, worm_store, settings, clip, RedactionSpec(
                boxes=(parse_box("0-3:0,0,64,64"),)), user=clerk, reason="复核后扩大遮蔽", key=key, via="test")
            assert again.new and again.version == 2 and again.recording.id != copy.id
            # A photo is redacted into a photo, the whole picture's region hidden
            shot = redact_recording(session, worm_store, settings, photo, RedactionSpec(
                boxes=(parse_box("32,32,128,128"),)), user=clerk, reason="遮蔽人脸", key=key, via="test")
            shot_file = _fetch(worm_store, shot.recording.sha256, tmp_path / "shot.jpg")
            assert shot_file.read_bytes()[:3] == b"\xff\xd8\xff" and shot.recording.container == "jpeg"
            assert _flat_blocks(_gray(shot_file), 32, 32, 128) < 3.0
            assert _flat_blocks(_gray(_fetch(worm_store, photo.sha256, tmp_path / "photo.jpg")), 32, 32, 128) > 15.0

            # The original raised raises its copies (each its own `classified` event); the photo's copy is not its
            classify_recordings(session, clerk, [clip], to="state_secret", reason="涉及国家秘密")
            session.commit()
            for each in (copy, again.recording, shot.recording):
                session.refresh(each)
            assert (copy.sensitivity, again.recording.sensitivity, shot.recording.sensitivity) == (
                "state_secret", "state_secret", "internal")
            ids = [r.id for r in session.exec(select(Recording)) if r.id is not None]
            problems = verify_archive(session, worm_store, ids).problems
            assert problems == [], "\n".join(str(p) for p in problems)

            # What the copy's row says was hidden, edited behind the application's back (a region dropped from it),
            # no longer matches its signed manifest
            made_record = dict(copy.technical)
            made_record["redaction"] = {**made_record["redaction"], "spec": {**made_record["redaction"]["spec"],
                                                                             "boxes": []}}
            copy.technical, copy_id = made_record, copy.id or 0
            session.add(copy)
            session.commit()
            found = [str(p) for p in verify_archive(session, worm_store, [copy_id], chain=False).problems]
            assert any("manifest" in m and "redaction" in m for m in found), found
            # A row edited behind the application's back: a copy passed off as an original, an original as a copy
            session.execute(text("UPDATE recording SET redacted_from_id = NULL WHERE id = :id"), {"id": copy.id})
            session.execute(text("UPDATE recording SET redacted_from_id = :copy WHERE id = :id"),
                            {"copy": copy.id, "id": photo.id})
            session.commit()
            session.expire_all()
            found = [str(p) for p in verify_archive(session, worm_store, ids, chain=False).problems]
            assert any("redacted_from_id: the catalogue row says None" in m and f"says {clip.id}" in m
                       for m in found), found
            assert any(f"redacted_from_id: the catalogue row says {copy.id}" in m for m in found), found
    finally:
        engine.dispose()
