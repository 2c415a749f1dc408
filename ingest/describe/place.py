"""Where a recording was made: the place and the source it came from. Pure functions only.

A recorder's own GPS (its sidecar's track, then the photo's EXIF) wins over a location tag in the container,
which wins over the docking station's configured place.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ingest.describe.facts import ExifFacts, SidecarFacts

__all__ = ["LOCATION_TAGS", "Place", "choose_place", "parse_iso6709"]

#: Container tags (as ffprobe names them) that may hold an ISO 6709 position, best first.
LOCATION_TAGS = ("location", "location-eng", "com.apple.quicktime.location.ISO6709", "xyz")
_ISO6709 = re.compile(r"^\s*([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)?(?:CRS[^/]*)?/?\s*$")


@dataclass(frozen=True)
class Place:
    lat: float
    lon: float
    source: str  # sidecar | exif | container | station


def parse_iso6709(text: str) -> tuple[float, float] | None:
    """'+39.9042+116.4074+050.000/' -> (39.9042, 116.4074); None if not ISO 6709 decimal degrees."""
    match = _ISO6709.match(text)
    if not match:
        return None
    lat, lon = float(match.group(1)), float(match.group(2))
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lat, lon


def choose_place(sidecar: SidecarFacts | None, exif: ExifFacts | None, container_tags: Mapping[str, str],
                 station_place: tuple[float, float] | None) -> Place | None:
    """The best place known: the sidecar's, the EXIF's, the container's location tag, else the station's."""
    if sidecar is not None and sidecar.lat is not None and sidecar.lon is not None:
        return Place(sidecar.lat, sidecar.lon, "sidecar")
    if exif is not None and exif.lat is not None and exif.lon is not None:
        return Place(exif.lat, exif.lon, "exif")
    tagged = next((p for t in LOCATION_TAGS if t in container_tags and (p := parse_iso6709(container_tags[t]))),
                  None)
    if tagged is not None:
        return Place(tagged[0], tagged[1], "container")
    if station_place is not None:
        return Place(station_place[0], station_place[1], "station")
    return None
