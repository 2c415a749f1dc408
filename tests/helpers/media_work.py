"""What the media backlog's tests read back: each recording's media work, the backlog, a renderer's life."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from catalog import DerivedMedia, MediaWorkFailure
from catalog.integrity import DECODE_CHECK
from catalog.media_work import media_backlog
from catalog.models import IntegrityCheck


def ids_by_name(report: Any) -> dict[str, int]:
    """An ingest report's recording ids by original name."""
    return {row["original_name"]: row["id"] for row in report.recordings}


def media_work_of(engine: Any) -> dict[int, set[str]]:
    """Each recording's media work as the catalogue has it: kinds made, `decode:<verdict>`, and `failed:<kind>`."""
    found: dict[int, set[str]] = {}
    with Session(engine) as session:
        for row in session.exec(select(DerivedMedia)):
            found.setdefault(row.recording_id, set()).add(row.kind)
        for check in session.exec(select(IntegrityCheck).where(IntegrityCheck.check == DECODE_CHECK)):
            found.setdefault(check.recording_id, set()).add(f"decode:{check.status}")
        for failure in session.exec(select(MediaWorkFailure)):
            found.setdefault(failure.recording_id, set()).add(f"failed:{failure.kind}")
    return found


def backlog(engine: Any) -> list[int]:
    """The media backlog's first 100 recording ids."""
    with Session(engine) as session:
        return media_backlog(session)


def alive(pid: int) -> bool:
    """Whether process *pid* runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def parent_of(pid: int) -> int | None:
    """The parent of process *pid* (None once it has ended)."""
    try:
        return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def ffmpeg_children(parent: int, marker: bytes | None = None) -> list[int]:
    """The ffmpeg processes *parent* started that still run (with *marker*: only those whose command line holds
    it as an argument)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if parent_of(int(entry.name)) == parent and Path(argv[0].decode(errors="replace")).name == "ffmpeg" and (
                marker is None or marker in argv):
            found.append(int(entry.name))
    return found
