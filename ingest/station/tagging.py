"""Tag the recordings of a dock session at the station: each change a stamp revision by the officer."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine
from sqlmodel import Session

from catalog import Recording, RecordingNotFound, RetentionPolicy, StampInvalid
from catalog.restamping import change_stamp, check_hold_lift
from catalog.sightings import sightings_of_dock
from storage import EvidenceStore

__all__ = ["TAGGABLE", "tag_dock_session"]

#: What an officer may set at the station.
TAGGABLE = ("case_number", "purpose", "important")


def tag_dock_session(engine: Engine, store: EvidenceStore, key: Ed25519PrivateKey, *, session_id: int,
                     files: tuple[str, ...] = (), by: str, reason: str, case_pattern: str,
                     changes: dict[str, Any], policy: RetentionPolicy,
                     roles: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Apply *changes* to the recordings of dock session *session_id* (or the chosen device paths).

    Each change is the same act as in the browser or `evidence tag` (`catalog.restamping.change_stamp`): a
    revision, sealed, and retention applied at once (a case number that names an open case links and holds).
    *roles* are the caller's (none for the station's kiosk, whose "by" is a typed officer number).

    Raises:
      StampInvalid: no change given, an unknown field, or a value the stamp rules refuse.
      HoldLiftRefused: a change would lift a recording's pending-case hold and *roles* may not (checked for every
        recording before any is changed).
      RecordingNotFound: the session has no recordings, or a chosen path is not in it.
    """
    roles = tuple(roles)
    unknown = sorted(set(changes) - set(TAGGABLE))
    if unknown or not changes:
        raise StampInvalid([f"tag with {', '.join(TAGGABLE)}" + (f"; not {', '.join(unknown)}" if unknown else "")])
    results: list[dict[str, Any]] = []
    with Session(engine) as session:
        sightings = [s for s in sightings_of_dock(session, session_id) if not files or s.device_path in files]
        missing = sorted(set(files) - {s.device_path for s in sightings})
        if missing or not sightings:
            raise RecordingNotFound(f"session {session_id}: " + (", ".join(missing) or "no recordings"))
        planned = []
        for sighting in sightings:
            recording = session.get(Recording, sighting.recording_id)
            assert recording is not None
            wanted = {k: v for k, v in changes.items() if getattr(recording, k) != v}
            # change_stamp's own rule, asked for every recording before anything of the session is changed
            check_hold_lift(recording, wanted, by=by, roles=roles, where=sighting.device_path)
            planned.append((sighting, recording, wanted))
        for sighting, recording, wanted in planned:
            if not wanted:
                results.append({"id": recording.id, "device_path": sighting.device_path, "revision": None})
                continue
            done = change_stamp(session, store, recording, by=by, reason=reason, case_pattern=case_pattern,
                                policy=policy, key=key, roles=roles, **wanted)
            results.append({"id": recording.id, "device_path": sighting.device_path,
                            "revision": done.revision.revision, "legal_hold": recording.legal_hold})
    return results
