"""A disposal's catalogue rows against what vouches for them: the tombstone against its `disposed` custody event
and the item of the signed disposal record, the batch row against the signed record. Pure.

The signed record (WORM storage) and the hash-chained event are what an outsider can check; the rows are what the
application shows (`evidence show`, `retention batches`, the web pages). A review rewrote a tombstone's operator,
approver, rule, retain-until, note and stamp, and a batch's proposer and approver, and every check passed.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from catalog.case_models import Disposal, DisposalBatch

__all__ = ["batch_findings", "tombstone_findings"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _same_instant(held: datetime | None, said: Any) -> bool:
    if held is None or said is None:
        return held is None and said is None
    try:
        return datetime.fromisoformat(str(said)) == held
    except ValueError:
        return False


def _differences(tombstone: Disposal, said: Mapping[str, Any], fields: tuple[tuple[str, str, str], ...],
                 source: str) -> list[str]:
    """(name, tombstone attribute, key in *said*): those that differ, of the keys *said* holds (older events and
    records may say less)."""
    return [f"its tombstone's {name} is {getattr(tombstone, attribute)!r}, {source} says {said[key]!r}"
            for name, attribute, key in fields if key in said and getattr(tombstone, attribute) != said[key]]


_EVENT_FIELDS = (("operator", "operator", "operator"), ("approver", "approver", "approver"), ("rule", "rule", "rule"),
                 ("note", "note", "note"), ("store key", "store_key", "store_key"))
_RECORD_FIELDS = (("rule", "rule", "rule"), ("note", "note", "reason"), ("stamp", "stamp", "stamp"),
                  ("size", "size_bytes", "size_bytes"), ("name", "original_name", "original_name"))


def tombstone_findings(tombstone: Disposal, event: Mapping[str, Any] | None,
                       signed_item: Mapping[str, Any] | None) -> list[str]:
    """How *tombstone* differs from its `disposed` event's details (*event*; None: no such event, named
    elsewhere) and from its item in the signed disposal record (*signed_item*; None: not listed, named
    elsewhere)."""
    found: list[str] = []
    if event is not None:
        found += _differences(tombstone, event, _EVENT_FIELDS, "its `disposed` custody event")
        if "retain_until" in event and not _same_instant(tombstone.retain_until, event["retain_until"]):
            found.append(f"its tombstone's retain-until is {_iso(tombstone.retain_until)}, its `disposed` custody "
                         f"event says {event['retain_until']}")
    if signed_item is not None:
        found += _differences(tombstone, signed_item, _RECORD_FIELDS, "the signed disposal record")
    return found


def batch_findings(batch: DisposalBatch, record: Mapping[str, Any]) -> list[str]:
    """How the batch row differs from its signed disposal record (who proposed and approved it, when, its status)."""
    found = [f"its {name} is {held!r}, the signed disposal record says {record[key]!r}" for name, held, key in (
        ("proposer", batch.created_by, "proposed_by"), ("approver", batch.approved_by, "approved_by"))
        if key in record and held != record[key]]
    for name, held, key in (("proposal time", batch.created_at, "proposed_at"),
                            ("approval time", batch.approved_at, "approved_at"),
                            ("finish time", batch.finished_at, "finished_at")):
        if key in record and not _same_instant(held, record[key]):
            found.append(f"its {name} is {_iso(held)}, the signed disposal record says {record.get(key)}")
    return found
