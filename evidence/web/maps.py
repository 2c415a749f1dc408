"""The maps on the search page and the case page (static/map.js over the vendored Leaflet): the points of what
is listed that has a place, a search's circle, and where the tiles come from (EVIDENCE_MAP_TILES; none: a plain
latitude/longitude grid, nothing fetched). Only what the page already lists is mapped: a point carries no more
than its card or row (id, file name, capture time), so the map shows nothing the caller may not see."""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from catalog.search import MAX_RADIUS_M, Near

__all__ = ["MapPoint", "map_context"]


@dataclass(frozen=True)
class MapPoint:
    recording_id: int
    lat: float | None  # as the row holds it: a row edited behind the archive's back may lack one of them
    lon: float | None
    name: str
    when: str  # the capture time as the page writes it (the agency's clock)


def map_context(tiles: str, attribution: str, points: Iterable[MapPoint], *, near: Near | None = None,
                pick: bool = False) -> dict[str, Any]:
    """What the page's map partial (templates/map.html) needs: the points as JSON-ready dicts (those with a
    missing or impossible coordinate left out), the circle searched, and whether a circle may be drawn to search.
    Pure."""
    shown = [{"id": p.recording_id, "lat": p.lat, "lon": p.lon, "name": p.name, "when": p.when,
              "href": f"/recordings/{p.recording_id}"}
             for p in points if _placed(p.lat, p.lon)]
    return {"tiles": tiles, "attribution": attribution, "points": shown, "pick": pick,
            "near": {"lat": near.lat, "lon": near.lon, "metres": near.metres} if near else None,
            "max_radius": int(MAX_RADIUS_M), "open": near is not None}


def _placed(lat: float | None, lon: float | None) -> bool:
    return (lat is not None and lon is not None and math.isfinite(lat) and math.isfinite(lon)
            and -90 <= lat <= 90 and -180 <= lon <= 180)
