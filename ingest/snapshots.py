"""A still of one frame of a video, kept as a record of a case: the player's snapshot.

The frame is decoded from the stored original (never the browser copy) where it lies (store.read_in_place), as
a lossless PNG, and attached to the case as `evidence case attach` attaches a file (ingest.documents: hashed,
WORM, signed manifest, linked with its purpose), its capture time the frame's own and its row naming the source
recording, its SHA-256 and the position. The original is re-hashed first: a still never claims to come from
bytes that are not the archived ones. Reading the original is an access like any other: the caller's role,
scope and class are checked with the stated reason (catalog.access.check_access at `play`), and the source
recording's `snapshot_taken` custody event records who took which frame, why, and what it became.
"""
from __future__ import annotations

import hashlib
import math
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session

from catalog import Case, CaseStateError, CustodyKind, Recording, append_event, find_by_sha256
from catalog.access import check_access, stated_reason
from catalog.errors import SnapshotRefused
from catalog.listings import result_facts
from catalog.said import Said, said_of, say
from catalog.stamps import MAX_PURPOSE
from catalog.user_models import User
from catalog.users import require
from ingest.config import Settings
from ingest.derive import FfmpegRefused, ffmpeg_source, run_ffmpeg
from ingest.documents import DerivedFrom, attach_document
from storage import EvidenceStore, HashMismatch

__all__ = ["STILL_TIMEOUT_S", "SnapshotRefused", "Still", "snapshot_problem", "take_snapshot"]

#: How long decoding one frame may take (a frame near the end of an hour on a network store).
STILL_TIMEOUT_S = 120.0
#: No recording is longer (a year): a position beyond is not a time in one.
MAX_POSITION_S = 366 * 86400.0
#: A position this far past the probed duration still names the last frame (the probe rounds).
_END_SLACK_S = 0.5


@dataclass(frozen=True)
class Still:
    recording: Recording  # the case record the still became
    new: bool  # False: the same frame was already kept (for this case, or in the archive and now linked)
    at_s: float


def snapshot_problem(recording: Recording, at_s: float, case: Case, linked_cases: tuple[str, ...],
                     purpose: str = "") -> Said | None:
    """Why a still of *recording* at *at_s* seconds, showing *purpose*, cannot go to *case*, or None. Pure."""
    name = say("recording {id} ({name})", id=recording.id, name=recording.original_name)
    if len(purpose.strip()) > MAX_PURPOSE:
        return say("what the still shows is {n} characters; at most {max}", n=len(purpose.strip()), max=MAX_PURPOSE)
    if recording.media_kind != "video":
        return say("{recording} is a {kind}: a still is taken of a video", recording=name,
                   kind=say(recording.media_kind))
    if recording.state not in ("archived", "verified"):
        return say("{recording} is {state}: its original is not in the archive", recording=name,
                   state=say(recording.state))
    if not math.isfinite(at_s) or at_s < 0 or at_s > MAX_POSITION_S:
        return say("{recording}: the position {at} is not a time in the recording (seconds from its start)",
                   recording=name, at=f"{at_s:.6g}")
    if recording.duration_s is not None and at_s > recording.duration_s + _END_SLACK_S:
        return say("{recording}: {at} s is past its end ({end} s)", recording=name, at=f"{at_s:.3f}",
                   end=f"{recording.duration_s:.3f}")
    if case.status != "open":
        return say("case {case} is closed (on {day}); reopen it before adding a still", case=case.number,
                   day=case.closed_on)
    if case.number not in linked_cases:
        return say("{recording} is not in case {case}: link it to the case first", recording=name, case=case.number)
    return None


def _frame(source: str, at_s: float, dest: Path) -> Path:
    """The frame shown at *at_s* as a PNG. A file is sought before decoding (exact since ffmpeg 2.1: it decodes
    from the keyframe before and drops what precedes); a URL read through its concat script cannot seek, so the
    frames before are decoded and dropped."""
    with ffmpeg_source(source) as reading:
        seek = ["-ss", f"{at_s:.3f}"]
        before, after = (seek, []) if reading.args[0] == "-i" else ([], seek)
        run_ffmpeg(["ffmpeg", "-nostdin", "-v", "error", "-y", *before, *reading.args, *after, "-map", "0:V:0",
                    "-frames:v", "1", "-c:v", "png", "-f", "image2", "-update", "1", str(dest)], dest,
                   STILL_TIMEOUT_S, reading)
    if not dest.exists() or dest.stat().st_size == 0:
        raise FfmpegRefused(say("no frame decodes at {at} s", at=f"{at_s:.3f}"))
    return dest


def _frame_time(recording: Recording, at_s: float) -> datetime | None:
    """The frame's time on the source's clock; None without one, or where it cannot be written (a device clock at
    the calendar's end)."""
    try:
        return recording.captured_start + timedelta(seconds=at_s) if recording.captured_start else None
    except OverflowError:
        return None


def _verify_original(session: Session, store: EvidenceStore, recording: Recording, actor: str) -> None:
    """Re-hash the stored original before a still claims to come from it (one read of the whole file): bytes
    changed behind the archive's back are a `fixity_failed` event and a refusal, never a still."""
    try:
        store.verify(recording.sha256)
    except HashMismatch as exc:
        append_event(session, CustodyKind.FIXITY_FAILED, actor=actor, recording_id=recording.id, details={
            "how": "re-hashed from the store before a still was taken", "problems": [str(exc)]})
        session.commit()
        raise SnapshotRefused(say("recording {id} ({name}): the stored original no longer hashes to its SHA-256 "
                                  "({fault}); no still is made, and the fault is recorded", id=recording.id,
                                  name=recording.original_name, fault=str(exc))) from None


def take_snapshot(session: Session, store: EvidenceStore, settings: Settings, key: Ed25519PrivateKey, *,
                  user: User, recording: Recording, case: Case, at_s: float, reason: str | None,
                  purpose: str = "") -> Still:
    """The frame of *recording* at *at_s* seconds as a PNG record of *case*, and the source's `snapshot_taken`
    event; committed. *purpose*: what the still shows (its purpose in the case; a default names the source).
    The caller then applies retention to the still (catalog.case_links.retain_after_link_change), as after any
    link.

    Raises:
      PermissionDenied: *user* may not manage cases.
      ReasonRequired / AccessRefused: as catalog.access.check_access at `play` (refusals recorded).
      SnapshotRefused: not a stored video, a position outside it, the case closed or not holding it, the stored
        original not hashing to its SHA-256 (re-hashed first; a `fixity_failed` event), or no frame decodes there
        (ffmpeg's reason).
      StorageError: the original cannot be read, or the still cannot be stored.
    """
    require(session, user.name, "manage_cases")  # the still becomes a record of the case: as linking one
    stated = stated_reason(reason)
    check_access(session, user, [recording], step="play", reason=stated, policy=settings.access_reason,
                 action="snapshot")
    assert recording.id is not None
    problem = snapshot_problem(recording, at_s, case, result_facts(session, [recording.id])[recording.id].cases,
                               purpose)
    if problem:
        raise SnapshotRefused(problem)
    _verify_original(session, store, recording, user.name)
    label = f"{at_s:09.3f}".replace(".", "-")
    with tempfile.TemporaryDirectory(prefix="evidence-still-") as tmp:
        dest = Path(tmp) / f"still-{recording.id}-{label}s.png"
        try:
            with store.read_in_place(recording.sha256) as source:
                _frame(source, at_s, dest)
        except ValueError as exc:  # FfmpegRefused: the frame is not there or does not decode
            raise SnapshotRefused(say("recording {id} ({name}) at {at} s: {fault}", id=recording.id,
                                      name=recording.original_name, at=f"{at_s:.3f}",
                                      fault=said_of(exc))) from None
        frame_time = _frame_time(recording, at_s)
        origin = {"recording_id": recording.id, "sha256": recording.sha256, "at_s": round(at_s, 3),
                  "original_name": recording.original_name}
        title = purpose.strip() or f"视频截图：第 {recording.id} 号记录 {at_s:.3f} 秒处"
        kept = find_by_sha256(session, hashlib.sha256(dest.read_bytes()).hexdigest())
        if kept is not None and kept.id is not None and case.number in result_facts(session, [kept.id])[kept.id].cases:
            still, new = kept, False  # the same frame kept for this case before: one item, a second event
        else:
            try:
                result = attach_document(session, store, settings, case, dest, title=title, by=user.name, key=key,
                                         derived=DerivedFrom(frame_time, "still frame", origin, recording))
            except CaseStateError as exc:
                raise SnapshotRefused(str(exc)) from None
            still, new = result.recording, result.new
    append_event(session, CustodyKind.SNAPSHOT_TAKEN, actor=user.name, recording_id=recording.id, details={
        "case": case.number, "at_s": round(at_s, 3), "still_id": still.id, "still_sha256": still.sha256,
        "reason": stated, "new": new, "original_verified": True})
    session.commit()
    return Still(still, new, at_s)
