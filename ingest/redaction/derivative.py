"""A redacted copy of a recording, kept as a recording of its own (issue 18, part 2).

`redact_recording` is the one operation behind `evidence redact` (and the web app's, later): it checks that the
person may redact and may read the original (role `redact`, then play rights, scope and class, with a stated reason,
catalog.access), renders the redaction from the stored original where it lies (`store.read_in_place`: nothing of it
is copied or changed), records that read once as an access of the original, and keeps the result as any evidence is
kept: staged under its own SHA-256, catalogued with a `redacted` custody event (the original's id and SHA-256, the
whole specification, the renderer and the reason; the event that makes the row, as `copied` does for a dock), stamped
as the original is, linked to the cases the original serves, written to WORM storage, and signed in a manifest that
names the original and the specification (catalog.manifests). Each new redaction of an original is a new version;
none replaces another.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine
from sqlmodel import Session

from catalog import (
    CaseStateError,
    CaseStatus,
    CustodyKind,
    IntegrityStatus,
    MediaKind,
    Recording,
    RecordingState,
    append_event,
    ensure_station_key,
    find_by_sha256,
    link_recording,
    record_stamp,
)
from catalog.access import (
    AccessRefused,
    ReasonRequired,
    check_access,
    disposed_message,
    record_access,
    record_refusals,
    role_problem,
    stated_reason,
)
from catalog.cases import cases_of
from catalog.clock import archive_now
from catalog.policy_adoption import policy_in_force
from catalog.recordings import redacted_copies
from catalog.replay import COUNTS_FROM, ROW_KEY, row_values
from catalog.retention import RetentionPolicy
from catalog.retention_job import base_time
from catalog.said import say
from catalog.user_models import User
from ingest.archiving import MIN_LOCK, archive_recording
from ingest.config import Settings
from ingest.derive import read_photo
from ingest.pipeline.cataloguing import Described, staged_recording
from ingest.redaction.faces import FaceSampler, FaceSearch, find_faces, find_faces_in_picture
from ingest.redaction.photo import open_photo, photo_renderer, pixelate, write_jpeg
from ingest.redaction.render import REDACT_TIMEOUT_S, ffmpeg_version, picture_size, render_redaction
from ingest.redaction.spec import Box, RedactionInvalid, RedactionSpec, spec_problems
from ingest.redaction.tracking import follow_tracks
from ingest.transfer import CopyResult, copy_and_hash
from storage import EvidenceStore, compute_retain_until

__all__ = ["ONE_PASS_MAX_PIXELS", "REDACTABLE", "Progress", "Redacted", "RedactionAbandoned",
           "check_redaction_request", "copy_kept_until", "redact_recording"]

#: Told what a redaction does now (`tracking`, `faces`, `rendering`, `archiving`) and the share of it done (0 to 1).
Progress = Callable[[str, float], None]

#: The largest picture whose faces are searched in the rendering's own decode (1080p): the frames held back until
#: the faces over them are known take about 1.6 s of the picture (about 150 MB at 1080p and 30 frames a second);
#: a larger one is searched first, in a decode of its own.
ONE_PASS_MAX_PIXELS = 1920 * 1088
#: What can be redacted: pictures and sound (a document's text is not, yet).
REDACTABLE = frozenset({MediaKind.VIDEO.value, MediaKind.AUDIO.value, MediaKind.PHOTO.value})


class RedactionAbandoned(RuntimeError):
    """The work was given up before anything was recorded: its job was taken over by another renderer (the hold
    on it ran out), which does it instead."""


@dataclass(frozen=True)
class Redacted:
    recording: Recording  # the redacted copy
    original: Recording
    version: int  # 1: the original's first redacted copy
    new: bool  # False: these very bytes were made before (that copy is returned; nothing is stored twice)


def _may_redact(session: Session, user: User, original: Recording) -> None:
    problem = role_problem(user, "redact")
    if problem is None:
        return
    # on the original's own custody, as a refusal by scope or class is
    record_refusals(session, user.name, [original.id or 0], action="redact", why="role",
                    details={"roles": list(user.roles)})
    raise AccessRefused(say("{problem}; refused: recording {id}", problem=problem, id=original.id),
                        recording_ids=[original.id or 0], scope="")


def _described(original: Recording, *, photo: bool, size: tuple[int, int] | None) -> Described:
    """The copy's row: what it shows is the original's capture (time, place, officer, device, stamp); its file is
    the rendering (H.264/AAC in MP4, or a JPEG) of the picture as shown (*size*: a rotated stream upright)."""
    o = original

    def even(n: int) -> int:  # H.264 4:2:0 pads to even sides; a JPEG keeps the photo's
        return n if photo else n + n % 2

    return Described(
        media_kind=o.media_kind, container="jpeg" if photo else "mp4",
        time_source=o.time_source, integrity_status=IntegrityStatus.OK.value,
        integrity_detail=f"rendered from recording {o.id} (SHA-256 {o.sha256}) by the redaction",
        video_codec=("mjpeg" if photo else "h264") if size else None,
        audio_codec="aac" if o.audio_codec and not photo else None,
        duration_s=o.duration_s, width=even(size[0]) if size else None, height=even(size[1]) if size else None,
        device_serial=o.device_serial, officer_number=o.officer_number, officer_name=o.officer_name,
        captured_start=o.captured_start, captured_end=o.captured_end, raw_device_time=o.raw_device_time,
        time_implausible=o.time_implausible, zone_assumed=o.zone_assumed, clock_offset_s=o.clock_offset_s, lat=o.lat,
        lon=o.lon, place_source=o.place_source, case_number=o.case_number, purpose=o.purpose, important=o.important)


def check_redaction_request(session: Session, user: User, original: Recording, reason: str, *,
                     faces: FaceSearch | None) -> str:
    """The stated reason, once *user* may redact and read *original* and it can be redacted (`redact_recording`
    says what each refusal raises); nothing of the original is read yet."""
    assert original.id is not None
    _may_redact(session, user, original)
    why = stated_reason(reason)
    if why is None:
        raise ReasonRequired(say("state why recording {id} is redacted (recorded with the copy)", id=original.id),
                             recording_ids=[original.id], scope="")
    check_access(session, user, [original], step="play", reason=why, policy="view", action="redact")
    if original.state == RecordingState.DISPOSED.value:
        raise CaseStateError(disposed_message(session, original))
    if original.state == RecordingState.STAGED.value:
        raise CaseStateError(say("recording {id} ({name}) is not in the WORM store yet; redact it once it is archived",
                                 id=original.id, name=original.original_name))
    if original.media_kind not in REDACTABLE:
        raise RedactionInvalid([say("recording {id} ({name}) is a {kind}; only video, audio and photos are redacted",
                                    id=original.id, name=original.original_name, kind=say(original.media_kind))])
    if faces is not None and (original.width is None or original.height is None):
        raise RedactionInvalid([say("recording {id} has no picture to find faces in", id=original.id)])
    return why


def _checked_spec(original: Recording, spec: RedactionSpec, size: tuple[int, int] | None, *, photo: bool,
                  faces: bool) -> None:
    """RedactionInvalid naming every problem of *spec* on the picture as shown (*size*), before anything long runs
    (with *faces*, regions may yet be found: "nothing to redact" waits for the search)."""
    problems = spec_problems(spec, width=size[0] if size else None, height=size[1] if size else None,
                             duration_s=original.duration_s, has_audio=bool(original.audio_codec) and not photo,
                             photo=photo)
    problems = [p for p in problems if not (faces and p.startswith("nothing to redact"))]
    if problems:
        raise RedactionInvalid(problems)


def _with_faces(source: str, original: Recording, spec: RedactionSpec, faces: FaceSearch, *, photo: bool,
                size: tuple[int, int], timeout_s: float, progress: Callable[[float], None] | None) -> RedactionSpec:
    """*spec* with a region over each face found in the original (read in place at *source*, shown at *size*),
    and how they were looked for (the detector, its model's SHA-256, thresholds, what was found) in its record."""
    regions, search = find_faces(source, width=size[0], height=size[1], duration_s=original.duration_s,
                                 photo=photo, search=faces, timeout_s=timeout_s, progress=progress)
    return _faces_added(original, spec, regions, search,
                        searched=say("{n} frame(s) searched", n=search.found['frames_searched']))


def _faces_added(original: Recording, spec: RedactionSpec, regions: list[Box], search: FaceSearch, *,
                 searched: str) -> RedactionSpec:
    """*spec* with the face *regions* found and how they were looked for in its record; RedactionInvalid when none
    was found and nothing else was asked."""
    if not regions and spec.hides_nothing:
        raise RedactionInvalid([say("no face was found in recording {id} ({searched}) and nothing else was asked: "
                                    "nothing to redact", id=original.id, searched=searched)])
    return replace(spec, boxes=spec.boxes + tuple(regions), extra={**spec.extra, "faces": search.as_json(),
                                                                    "face_regions": len(regions)})


def _render_photo(store: EvidenceStore, original: Recording, spec: RedactionSpec, faces: FaceSearch | None,
                  dest: Path, progress: Progress | None) -> tuple[RedactionSpec, tuple[int, int]]:
    """A photo redacted by Pillow (ingest.redaction.photo): decoded upright (EXIF orientation; HEIF too), checked,
    searched for faces, pixelated, written as a JPEG to *dest*; the specification as carried out and the size."""
    data = read_photo(store, original.sha256)
    try:
        rgb = open_photo(bytes(data), f"recording {original.id} ({original.original_name})")
    except ValueError as exc:
        raise RedactionInvalid([str(exc)]) from exc
    del data
    size = (int(rgb.shape[1]), int(rgb.shape[0]))
    _checked_spec(original, spec, size, photo=True, faces=faces is not None)
    if faces is not None:
        _stage(progress, "faces")
        regions, search = find_faces_in_picture(rgb, search=faces)
        spec = _faces_added(original, spec, regions, search, searched=say("the photo searched"))
    _stage(progress, "rendering")
    write_jpeg(pixelate(rgb, spec.regions(), spec.block), dest)
    return spec, size


def _copy_name(original: Recording, version: int, *, photo: bool) -> str:
    stem = original.original_name.rsplit(".", 1)[0] if "." in original.original_name else original.original_name
    return f"{stem}.redacted-v{version}.{'jpg' if photo else 'mp4'}"


def redact_recording(session: Session, store: EvidenceStore, settings: Settings, original: Recording,
                     spec: RedactionSpec, *, user: User, reason: str, key: Ed25519PrivateKey, via: str,
                     faces: FaceSearch | None = None, timeout_s: float = REDACT_TIMEOUT_S,
                     progress: Progress | None = None, held: Callable[[], bool] | None = None) -> Redacted:
    """Make a redacted copy of *original* as *spec* says, with the *faces* found (ingest.redaction.faces) hidden
    too, for *user*, and keep it (see the module). *progress* is told each stage (`faces`, `rendering`,
    `archiving`) and the share of it done; *held* (a job's hold: ingest.redaction.jobs) is asked before the read is
    recorded and before the copy is catalogued, and RedactionAbandoned raised when it says no.

    Raises:
      AccessRefused: *user* may not redact, or may not play *original* (role, scope, class); recorded.
      ReasonRequired: no reason stated.
      CaseStateError: *original* was disposed of, or is not in the WORM store yet (staged).
      RedactionInvalid: *spec* cannot be carried out on *original* (each problem named; nothing read), or nothing
        is left to hide (no face found, nothing else asked).
      FacesUnavailable: *faces* asked for where the detector's model is not installed.
      RedactionAbandoned: *held* said the work is no longer this caller's (nothing recorded or kept).
      FfmpegRefused, DeriveFailed, OSError: the rendering failed (nothing catalogued; no access recorded).
      StorageError: the store refused or is away (the copy stays staged, catalogued, for the archive step).
    """
    assert original.id is not None
    why = check_redaction_request(session, user, original, reason, faces=faces)
    photo = original.media_kind == MediaKind.PHOTO.value
    staging = settings.staging_dir
    staging.mkdir(parents=True, exist_ok=True)
    rendered = staging / f"redact-{uuid.uuid4().hex}.{'jpg' if photo else 'mp4'}"
    size: tuple[int, int] | None
    try:
        if photo:
            spec, size = _render_photo(store, original, spec, faces, rendered, progress)
        else:
            # a presigned URL valid for the tracking, the face search and the rendering, each bounded by timeout_s
            passes = 1 + (faces is not None) + len(spec.tracks)
            with store.read_in_place(original.sha256, valid_s=timeout_s * passes) as source, \
                    _store_answers(store, original.sha256):
                size = picture_size(source) if original.width else None
                _checked_spec(original, spec, size, photo=photo, faces=faces is not None)
                if spec.tracks:
                    assert size is not None
                    spec = follow_tracks(source, spec, width=size[0], height=size[1], timeout_s=timeout_s,
                                         duration_s=original.duration_s, progress=_stage(progress, "tracking"))
                sampler = None
                if faces is not None:
                    assert size is not None
                    if size[0] * size[1] <= ONE_PASS_MAX_PIXELS:  # searched in the rendering's own decode
                        sampler = FaceSampler(faces, width=size[0], height=size[1], duration_s=original.duration_s)
                    else:  # searched first: the frames held back for one pass would take too much memory
                        spec = _with_faces(source, original, spec, faces, photo=photo, size=size,
                                           timeout_s=timeout_s, progress=_stage(progress, "faces"))
                render_redaction(source, rendered, spec, width=size[0] if size else None,
                                 height=size[1] if size else None, duration_s=original.duration_s,
                                 has_audio=bool(original.audio_codec), timeout_s=timeout_s,
                                 progress=_stage(progress, "rendering"), faces=sampler)
                if sampler is not None:
                    search = sampler.found()
                    spec = _faces_added(original, spec, sampler.regions(), search,
                                        searched=say("{n} frame(s) searched", n=search.found['frames_searched']))
                    # what is signed is checked as the searched-first path checks it (the count of regions; a
                    # region after the catalogued end): refused as a whole, the rendering thrown away
                    _checked_spec(original, spec, size, photo=False, faces=False)
        _still_held(held, original)
        record_access(session, actor=user.name, recording=original, what="original", viewing_session=None,
                      details={"via": via, "reason": why, "for": "redaction"})
        copy = copy_and_hash(rendered, staging, part_name=f"redact-{uuid.uuid4().hex}", resume=False)
    finally:
        rendered.unlink(missing_ok=True)
    existing = find_by_sha256(session, copy.sha256)
    earlier = redacted_copies(session, original.id)
    if existing is not None:
        if existing.state != RecordingState.STAGED.value:
            copy.destination.unlink(missing_ok=True)
        else:  # made before and left staged (the store was away): these bytes are its staged copy; archive it now
            _archive(session, store, settings, existing, user=user, key=key, progress=progress)
        version = next((n for n, r in enumerate(earlier, 1) if r.id == existing.id), 0)
        return Redacted(existing, original, version, new=False)
    try:
        _still_held(held, original)
        recording = _catalogue_copy(session, store, settings, original, copy, spec, key=key, user=user, why=why,
                                    version=len(earlier) + 1, photo=photo, size=size)
    except BaseException:
        # Nothing names the staged copy (its hash is new): it goes, not left in staging uncatalogued for ever
        session.rollback()
        copy.destination.unlink(missing_ok=True)
        raise
    _archive(session, store, settings, recording, user=user, key=key, progress=progress)
    return Redacted(recording, original, len(earlier) + 1, new=True)


def _still_held(held: Callable[[], bool] | None, original: Recording) -> None:
    if held is not None and not held():
        raise RedactionAbandoned(f"the redaction of recording {original.id} was taken over by another renderer")


@contextmanager
def _store_answers(store: EvidenceStore, sha256: str) -> Iterator[None]:
    """ffmpeg's failure to read the original (FfmpegRefused, or its deadline) passed on once the store says the
    original is there: on a URL a network failure looks like damaged media, and then StorageError is raised."""
    try:
        yield
    except ValueError as exc:
        if not isinstance(exc, RedactionInvalid):
            store.head(sha256)
        raise


def _stage(progress: Progress | None, stage: str) -> Callable[[float], None] | None:
    if progress is None:
        return None
    progress(stage, 0.0)
    return lambda share: progress(stage, share)


def _archive(session: Session, store: EvidenceStore, settings: Settings, recording: Recording, *, user: User,
             key: Ed25519PrivateKey, progress: Progress | None) -> None:
    """The one archive step (retention by the rules at hand-off, the cases it serves included; WORM copy; manifest)
    for a staged copy; *recording* refreshed."""
    assert recording.id is not None
    if progress is not None:
        progress("archiving", 0.0)
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    archive_recording(engine, store, settings.staging_dir, recording.id, key=key, actor=user.name,
                      policy=settings.retention_policy, station=settings.station)
    session.refresh(recording)


def copy_kept_until(original_until: datetime | None, counts_from: datetime, *, now: datetime,
                    policy: RetentionPolicy) -> datetime:
    """How long a redacted copy is locked when it is made: as long as its original is kept now (*original_until*;
    else the routine term from *counts_from*, its original's base), and `ingest.archiving.MIN_LOCK` from *now* at
    least (a store locks only into the future). Pure."""
    kept = original_until or compute_retain_until(counts_from, routine_months=policy.routine_months, zone=policy.zone)
    return max(kept, now + MIN_LOCK)


def _catalogue_copy(session: Session, store: EvidenceStore, settings: Settings, original: Recording, copy: CopyResult,
                    spec: RedactionSpec, *, key: Ed25519PrivateKey, user: User, why: str, version: int, photo: bool,
                    size: tuple[int, int] | None) -> Recording:
    """The copy's row, its `redacted` event, first stamp and case links, committed (state `staged`)."""
    ensure_station_key(session, settings.station, key, actor=user.name, station_name=settings.station_name,
                       store=store)
    now = archive_now(session)[0]
    policy = policy_in_force(session, settings.retention_policy)
    # Kept as long as its original, never longer by the routine rule: its routine retention counts from the
    # original's base (stated here and in its `redacted` event, so verify replays the same), and it is locked at
    # first as long as the original is kept now (a day at least: a store locks only into the future)
    counts_from = base_time(original)
    made = {"original_id": original.id, "original_sha256": original.sha256, "version": version,
            "spec": spec.as_json(), "renderer": photo_renderer() if photo else ffmpeg_version(), "reason": why,
            COUNTS_FROM: counts_from.isoformat(), "by": user.name, "at": now.isoformat()}
    recording = staged_recording(copy, _described(original, photo=photo, size=size),
                                 original_name=_copy_name(original, version, photo=photo), station=settings.station,
                                 now=now, retain_until=copy_kept_until(original.retain_until, counts_from,
                                                                       now=now, policy=policy),
                                 retention_rule=f"as long as its original, recording {original.id}",
                                 technical={"redaction": made})
    recording.sensitivity = original.sensitivity
    recording.redacted_from_id = original.id
    session.add(recording)
    session.flush()
    append_event(session, CustodyKind.REDACTED, actor=user.name, recording_id=recording.id, details={
        **{k: v for k, v in made.items() if k not in ("by", "at")}, "sha256": copy.sha256,
        "size_bytes": copy.size_bytes, ROW_KEY: row_values(recording)})
    record_stamp(session, recording, by=user.name, reason=f"redacted copy (version {version}) of recording "
                                                           f"{original.id}")
    assert original.id is not None
    for case, link in cases_of(session, original.id):
        if case.status == CaseStatus.OPEN.value:
            # The redactor's right to read the original was checked; the copy is of its class and shows less, so
            # its links are the system's (a person's link checks the copy's class against grants it has none of yet)
            link_recording(session, case, recording, purpose=f"{link.purpose} (redacted copy)"[:500], by=user.name,
                           source="redaction")
    session.commit()  # catalogued as staged first: a store failure leaves a staged copy the archive queue takes
    return recording
