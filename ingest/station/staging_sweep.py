"""Sweep the staging area of copies nothing needs any more.

A staged copy, `staging/<sha256>`, normally goes when its recording is archived (the store consumes it). Some are
left behind: identical bytes docked at two stations at once leave the losing station with a copy of a recording
that the other station stages and archives (1 GB in the fault drill), and a crash between the store's write and
the unlink leaves a copy of an archived recording. Nothing else ever removes them.

A copy is removed only when it is certain not to be needed; every doubt keeps it:

* only names of 64 lowercase hex digits that are regular files (never followed: a symbolic link, a folder or a
  device node named like a hash is left alone and counted), so `*.part` resumable copies, the `journal/` and
  `known/` folders and anything else in staging are never touched;
* kept when a staging journal names the hash (a copy staged during a catalogue outage, waiting to be
  catalogued) or the caller *protect*s it (copies the running ingests are using);
* kept when no recording has that hash: not yet catalogued (it may be journaled or being registered now);
* kept while its recording is `staged`, here (the copy the archive worker will upload) or at another station
  (the other station archives it; this copy stays until the store holds the bytes);
* removed when its recording is `archived` or `verified` *and* the store answers that it holds the object;
  kept when the store does not (then this copy may be the only one: a warning says so) or cannot answer;
* removed when its recording is `disposed`: its retention ended and the archived object was lawfully deleted,
  so a copy must not outlive it;
* any other state is kept;
* a copy's part checksums (`<sha256>.parts`, storage.part_checksums) go with it, and one whose copy is gone
  (the upload consumed the copy and stopped before the checksums) is removed.

The store's own scratch (a half-written file in the local store's `incoming/`, an S3 multipart upload never
completed) is swept beside it by `sweep_store_scratch`: the store's `sweep_scratch` decides what is a leftover.

Recording states only move forward (staged → archived → verified → disposed), so a decision to remove cannot
turn wrong between the catalogue's answer and the unlink. The journals and *protect* are read last, just before
removing. A catalogue error (OperationalError) or an unreadable journal removes nothing and is raised for the
caller to log; the next sweep tries again. SweepResult counts each kept copy once, under the first reason that
keeps it in the order the catalogue, the store, then the journals and *protect* are consulted.
"""
from __future__ import annotations

import json
import logging
import os
import re
import stat
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from catalog import RecordingState
from catalog.recordings import SHA256_CHUNK, recordings_by_sha256
from storage import EvidenceStore, Leftover, StorageError
from storage.part_checksums import PARTS_SUFFIX, parts_path

__all__ = ["Removed", "SweepResult", "journaled_hashes", "sweep_staging", "sweep_store_scratch"]

logger = logging.getLogger(__name__)

_NAME = re.compile(r"[0-9a-f]{64}")
#: Hashes asked of the catalogue per query.
QUERY_CHUNK = SHA256_CHUNK

# Why a copy is kept (the keys of SweepResult.kept).
NOT_REGULAR = "not a regular file"
JOURNALED = "named by a staging journal"
PROTECTED = "in use by an ingest"
UNCATALOGUED = "not catalogued"
STAGED_HERE = "staged at this station"
STAGED_ELSEWHERE = "staged at another station"
NOT_IN_STORE = "archived but not in the store"
STORE_UNAVAILABLE = "store did not answer"
OTHER_STATE = "recording in another state"
UNREMOVABLE = "could not be removed"


@dataclass(frozen=True)
class Removed:
    sha256: str
    size_bytes: int
    why: str


@dataclass
class SweepResult:
    removed: list[Removed] = field(default_factory=list)
    kept: dict[str, int] = field(default_factory=dict)  # why -> how many copies

    @property
    def bytes_removed(self) -> int:
        return sum(r.size_bytes for r in self.removed)

    def as_json(self) -> dict[str, Any]:
        return {"removed": [vars(r) for r in self.removed], "bytes_removed": self.bytes_removed,
                "kept": dict(self.kept)}


def journaled_hashes(staging: Path) -> set[str]:
    """Every SHA-256 a staging journal names (any readable line; torn ones are skipped).

    Raises OSError when a journal exists but cannot be read.
    """
    found: set[str] = set()
    folder = staging / "journal"
    try:
        paths = sorted(folder.iterdir())
    except FileNotFoundError:
        return found
    for path in paths:
        if not path.name.endswith(".jsonl"):
            continue
        try:
            text = path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            continue  # catalogued and forgotten a moment ago
        for line in text.splitlines():
            try:
                sha = json.loads(line).get("sha256")
            except (ValueError, AttributeError):
                continue
            if isinstance(sha, str):
                found.add(sha)
    return found


def _candidates(staging: Path, kept: Counter[str]) -> dict[str, int]:
    """Regular files named like a hash, with their sizes (links are not followed)."""
    found: dict[str, int] = {}
    with os.scandir(staging) as entries:
        for entry in entries:
            if not _NAME.fullmatch(entry.name):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(info.st_mode):
                if not stat.S_ISDIR(info.st_mode):
                    logger.warning("Staging holds %r, named like a staged copy but not a regular file: left alone.",
                                   entry.path)
                kept[NOT_REGULAR] += 1
                continue
            found[entry.name] = info.st_size
    return found


def _catalogue(engine: Engine, hashes: list[str]) -> dict[str, tuple[int, str, str]]:
    """sha256 -> (recording id, state, station code) of the recordings holding these hashes."""
    with Session(engine) as session:
        return recordings_by_sha256(session, hashes, chunk_size=QUERY_CHUNK)


def sweep_staging(engine: Engine, store: EvidenceStore, staging: Path, *, station: str,
                  protect: set[str]) -> SweepResult:
    """Remove the staged copies that are certain not to be needed (the rules are in the module docstring).

    Raises:
      OperationalError: the catalogue did not answer (nothing was removed).
      OSError: staging or a journal in it cannot be read (nothing was removed).
    """
    kept: Counter[str] = Counter()
    result = SweepResult()
    try:
        sizes = _candidates(staging, kept)
    except FileNotFoundError:
        return result
    hashes = sorted(sizes)
    doomed = _doomed(_catalogue(engine, hashes), hashes, store, station=station, kept=kept)
    if doomed:
        result.removed = _remove(staging, doomed, sizes, protect=protect, kept=kept)
    _remove_orphan_parts(staging)
    _remove_redaction_leftovers(staging, older_than_s=REDACTION_LEFTOVER_S)
    result.kept = dict(kept)
    return result


def sweep_store_scratch(store: EvidenceStore, *, older_than_s: float, now: datetime | None = None) -> list[Leftover]:
    """The store's `sweep_scratch` (EVIDENCE_STORE_SCRATCH_AGE_S), for a caller that must go on whatever happens:
    a store that does not answer is logged and swept next time (nothing removed)."""
    try:
        removed = store.sweep_scratch(older_than=timedelta(seconds=older_than_s), now=now or datetime.now(UTC))
    except (StorageError, OSError) as exc:
        logger.warning("Store scratch not swept (the store did not answer: %s); will retry.", exc)
        return []
    except Exception:  # a housekeeping step never stops its caller (e.g. a store writer of an older release)
        logger.exception("Store scratch not swept; will retry.")
        return []
    if removed:
        logger.warning("Store scratch: removed %d leftover(s) of killed writes.", len(removed))
    return removed


#: What a redaction (ingest.redaction.derivative) writes in staging before its copy is catalogued: the rendering,
#: its hashing copy's part file and the filter graph. A run killed there leaves them; nothing else names them.
_REDACTION_LEFTOVER = re.compile(r"^(redact-[0-9a-f]{32}\.(mp4|jpg|part)|\.redaction-[A-Za-z0-9_]+\.filtergraph)$")
#: Older than the longest a rendering may take (ingest.redaction.render.REDACT_TIMEOUT_S, 4 h) and then some.
REDACTION_LEFTOVER_S = 24 * 3600.0


def _remove_redaction_leftovers(staging: Path, *, older_than_s: float) -> None:
    """A killed redaction's files (a rendering of evidence, with what it hid and what it did not), once no
    redaction can still be writing them: they must not outlive the original's disposal."""
    cutoff = time.time() - older_than_s
    with os.scandir(staging) as entries:
        stale = [entry.name for entry in entries if _REDACTION_LEFTOVER.match(entry.name)
                 and entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff]
    for name in stale:
        (staging / name).unlink(missing_ok=True)
    if stale:
        logger.warning("Staging: removed %d leftover(s) of killed redactions.", len(stale))


def _remove_orphan_parts(staging: Path) -> None:
    """Part-checksum files whose staged copy is gone (nothing reads them any more)."""
    with os.scandir(staging) as entries:
        orphans = [entry.name for entry in entries if entry.name.endswith(PARTS_SUFFIX)
                   and _NAME.fullmatch(entry.name.removesuffix(PARTS_SUFFIX)) and entry.is_file(follow_symlinks=False)
                   and not (staging / entry.name.removesuffix(PARTS_SUFFIX)).exists()]
    for name in orphans:
        (staging / name).unlink(missing_ok=True)


def _doomed(rows: dict[str, tuple[int, str, str]], hashes: list[str], store: EvidenceStore, *, station: str,
            kept: Counter[str]) -> dict[str, str]:
    """sha256 -> why its copy can go, for the copies the catalogue and the store say nothing needs; every other
    copy is counted in *kept* under why it stays."""
    doomed: dict[str, str] = {}
    store_down = False
    for sha in hashes:
        row = rows.get(sha)
        if row is None:
            kept[UNCATALOGUED] += 1
            continue
        rid, state, where = row
        if state == RecordingState.STAGED:
            kept[STAGED_HERE if where == station else STAGED_ELSEWHERE] += 1
        elif state == RecordingState.DISPOSED:
            doomed[sha] = f"recording {rid} is disposed (its retention ended and the archive deleted it)"
        elif state in (RecordingState.ARCHIVED, RecordingState.VERIFIED):
            if store_down:
                kept[STORE_UNAVAILABLE] += 1
                continue
            try:
                held = store.exists(sha)
            except StorageError as exc:
                store_down = True
                logger.warning("Staging sweep: the store did not answer (%s); copies of archived recordings "
                               "are kept for now.", exc)
                kept[STORE_UNAVAILABLE] += 1
                continue
            if held:
                doomed[sha] = f"recording {rid} is {state} and the store {store.name!r} holds its bytes"
            else:
                logger.warning("Staging sweep: recording %d is %s but the store %r does not hold %s; its staged "
                               "copy is kept.", rid, state, store.name, sha)
                kept[NOT_IN_STORE] += 1
        else:
            kept[OTHER_STATE] += 1
    return doomed


def _remove(staging: Path, doomed: dict[str, str], sizes: dict[str, int], *, protect: set[str],
            kept: Counter[str]) -> list[Removed]:
    """Unlink the doomed copies, except those a journal names or an ingest protects (counted in *kept*)."""
    removed: list[Removed] = []
    journaled = journaled_hashes(staging)  # read last: a copy journaled meanwhile is still kept
    for sha, why in doomed.items():
        if sha in journaled:
            kept[JOURNALED] += 1
            continue
        if sha in protect:
            kept[PROTECTED] += 1
            continue
        try:
            os.unlink(staging / sha)
        except FileNotFoundError:
            continue  # consumed by the pipeline or the archive meanwhile
        except OSError as exc:
            logger.warning("Staging sweep: cannot remove %s: %s", sha, exc.strerror or exc)
            kept[UNREMOVABLE] += 1
            continue
        parts_path(staging / sha).unlink(missing_ok=True)
        logger.info("Removed staged copy %s (%d bytes): %s.", sha, sizes[sha], why)
        removed.append(Removed(sha, sizes[sha], why))
    return removed
