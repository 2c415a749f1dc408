"""Redaction attacked from outside (found by a review): a person who reads a classed original only through a grant
on its case redacts it (the copy's case link once refused them, after the read, leaving redacted bytes in staging);
a failure after the rendering leaves nothing uncatalogued in staging; a phone's rotated clip keeps its colours and
its regions land where the picture shows them."""
from __future__ import annotations

import re
import subprocess
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import Session, col, select

from catalog import DEFAULT_CASE_PATTERN, DEFAULT_CASE_TYPES, CustodyEvent, Recording, RetentionPolicy
from catalog.cases import create_case, link_recording
from catalog.classification import classify_recordings, grant_case_access
from catalog.users import add_user
from ingest.config import Settings
from ingest.redaction import RedactionInvalid, RedactionSpec, parse_box, render_redaction
from ingest.redaction import derivative as derivative_module
from ingest.redaction.derivative import redact_recording
from ingest.redaction.render import picture_size

POLICY = RetentionPolicy(routine_months=6, case_types=DEFAULT_CASE_TYPES, zone="Asia/Shanghai")
CASE = "京朝城管罚字〔2026〕第00123号"
_HASH_NAME = re.compile(r"^[0-9a-f]{64}$")


def _staged(settings: Settings) -> set[str]:
    return {p.name for p in settings.staging_dir.iterdir()} if settings.staging_dir.exists() else set()


@pytest.mark.parametrize(("class_", "role"), [("personal", "supervisor"), ("state_secret", "clerk")])
@pytest.mark.usefixtures("ffmpeg_available")
def test_a_grant_holder_redacts_a_classed_recording_and_the_copy_serves_the_case(card, class_, role):
    with Session(card.engine) as session:
        clip = card.clip(session)
        admin = add_user(session, "admin", roles=["admin"], by="test")
        person = add_user(session, role, roles=[role], by="test")
        session.commit()
        case = create_case(session, number=CASE, title="无照经营", case_type="penalty-general", unit="城管",
                           opened_on=date(2026, 11, 1), by="admin", case_pattern=DEFAULT_CASE_PATTERN,
                           policy=POLICY, today=date(2026, 11, 23))
        link_recording(session, case, clip, purpose="证明违法事实", by="admin")
        classify_recordings(session, admin, [clip], to=class_, reason="含当事人面部")
        grant_case_access(session, admin, case, to_user=role, reason="办案需要")
        session.commit()
        made = redact_recording(session, card.store, card.settings, clip,
                                RedactionSpec(boxes=(parse_box("1-2:96,64,96,96"),)), user=person,
                                reason="公示前遮蔽", key=card.key, via="test")
        assert made.recording.sensitivity == class_ and made.recording.state in ("archived", "verified")
        linked = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "case_linked",
                                                         CustodyEvent.recording_id == made.recording.id)).all()
        assert [e.details["case"] for e in linked] == [CASE]
        assert not any(_HASH_NAME.match(name) for name in _staged(card.settings))


@pytest.mark.usefixtures("ffmpeg_available")
def test_a_failure_after_rendering_leaves_no_redacted_bytes_in_staging(card, monkeypatch):
    with Session(card.engine) as session:
        clip = card.clip(session)
        clerk = add_user(session, "clerk", roles=["clerk"], by="test")
        session.commit()
        before = _staged(card.settings)

        def stamp_fails(*_args: object, **_kwargs: object) -> None:
            raise RuntimeError("the catalogue went away while the copy was catalogued")

        monkeypatch.setattr(derivative_module, "record_stamp", stamp_fails)
        with pytest.raises(RuntimeError, match="went away"):
            redact_recording(session, card.store, card.settings, clip,
                             RedactionSpec(boxes=(parse_box("1-2:96,64,96,96"),)), user=clerk, reason="公示前遮蔽",
                             key=card.key, via="test")
        assert _staged(card.settings) == before  # no rendering, no staged copy, no part file
        assert session.exec(select(Recording).where(col(Recording.redacted_from_id).is_not(None))).all() == []
        assert session.exec(select(CustodyEvent).where(CustodyEvent.kind == "redacted")).all() == []


def _rgb(path: Path, width: int, height: int) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3).astype(np.int16)


@pytest.mark.usefixtures("ffmpeg_available")
def test_a_rotated_clip_is_redacted_upright_in_colour_where_the_picture_shows_the_region(tmp_path):
    # A phone held upright stores its picture on its side with a rotation: stored 320×240, shown 240×320
    plain = tmp_path / "plain.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=s=320x240:rate=25", "-t", "2",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(plain)], check=True)
    rotated = tmp_path / "rotated.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(plain), "-c", "copy", "-metadata:s:v:0",
                    "rotate=90", str(rotated)], check=True)
    assert picture_size(rotated) == (240, 320)
    spec = RedactionSpec(boxes=(parse_box("160,240,64,64"),))  # near the bottom right of the upright picture
    out = render_redaction(rotated, tmp_path / "out.mp4", spec, width=240, height=320, duration_s=2.0,
                           has_audio=False)
    assert picture_size(out) == (240, 320)
    before, after = _rgb(rotated, 240, 320), _rgb(out, 240, 320)
    changed = np.abs(before - after).max(axis=2) > 24
    assert changed[240:304, 160:224].mean() > 0.3 and changed[:200].mean() < 0.01
    assert int((after.max(axis=2) - after.min(axis=2)).max()) > 100  # still in colour
    # and a region inside the stored size but outside the shown picture is refused, not silently lost
    with pytest.raises(RedactionInvalid, match="outside the 240×320 picture"):
        render_redaction(rotated, tmp_path / "never.mp4", RedactionSpec(boxes=(parse_box("250,10,64,64"),)),
                         width=240, height=320, duration_s=2.0, has_audio=False)
