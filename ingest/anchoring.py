"""Anchor the custody chain head in WORM storage after work that adds history (best effort, never raises).

By default the chain head is anchored after every dock session (`evidence ingest`, `station watch`), after
every disposal batch, after every `evidence verify`, and every EVIDENCE_ANCHOR_INTERVAL_S by `station watch`,
`worker --schedule` and `evidence serve` (so web activity is anchored where no station or scheduler runs).
A store or catalogue that is away is logged; the next anchor covers the same events.
"""
from __future__ import annotations

import logging
import threading

from sqlalchemy.engine import Engine
from sqlmodel import Session

from catalog import load_or_create_key
from catalog.anchors import anchor_quietly
from catalog.models import CustodyAnchor
from catalog.types import utcnow
from ingest.config import Settings
from storage import EvidenceStore

__all__ = ["anchor_chain", "anchor_periodically"]

logger = logging.getLogger(__name__)


def anchor_chain(settings: Settings, engine: Engine, store: EvidenceStore, *, reason: str,
                 actor: str | None = None, key: object | None = None,
                 create_key: bool = True) -> CustodyAnchor | None:
    """Anchor the chain head now with this station's key (*create_key* False: only if the key file exists, so a
    machine that only verifies does not become a station). None when nothing was written."""
    try:
        if key is None:
            if not create_key and not settings.station_key_path.exists():
                logger.info("No station key at %s: the chain head is not anchored after %s.",
                            settings.station_key_path, reason)
                return None
            key = load_or_create_key(settings.station_key_path)
    except (OSError, ValueError) as exc:
        logger.error("Could not read the station key to anchor the custody chain after %s: %s", reason, exc)
        return None
    with Session(engine, expire_on_commit=False) as session:
        return anchor_quietly(session, store, station=settings.station, key=key,
                              actor=actor or f"station:{settings.station}", now=utcnow(), reason=reason, tsa=settings)


def anchor_periodically(settings: Settings, engine: Engine, store: EvidenceStore, *, key: object, who: str,
                        stop: threading.Event) -> None:
    """Anchor the chain head every EVIDENCE_ANCHOR_INTERVAL_S until *stop* is set (0: never); a run in which
    nothing happened writes nothing (`write_anchor` skips an anchored head). For a thread of *who*."""
    interval = settings.anchor_interval_s
    while interval > 0 and not stop.wait(interval):
        anchor_chain(settings, engine, store, key=key, reason=f"every {interval:g} s ({who})")
