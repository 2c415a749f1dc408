"""The evidence catalog: tables, migrations, custody chain, stamps and search."""
from catalog.custody import CustodyKind, append_event, find_chain_breaks, load_chain
from catalog.db import open_catalog, redact_url
from catalog.errors import CatalogError, CatalogUnavailable, CustodyBroken, RecordingNotFound, StampInvalid
from catalog.manifests import (
    MANIFEST_FORMAT,
    build_manifest,
    ensure_station_key,
    read_manifest,
    trusted_fingerprints,
    write_manifest,
)
from catalog.models import (
    CustodyEvent,
    DerivedMedia,
    Device,
    DockSession,
    IntegrityStatus,
    MediaKind,
    Officer,
    Recording,
    RecordingState,
    Sighting,
    StampRevision,
    Station,
)
from catalog.recordings import (
    ensure_device,
    ensure_officer,
    ensure_station,
    find_by_sha256,
    find_known_sighting,
    get_recording,
    recording_as_json,
    sightings_of,
)
from catalog.search import Near, SearchFilters, run_search
from catalog.signing import SignatureInvalid, load_or_create_key
from catalog.stamps import DEFAULT_CASE_PATTERN, Stamp, record_stamp, restamp, stamp_history, validate_stamp

__all__ = [
    "DEFAULT_CASE_PATTERN", "DerivedMedia", "CatalogError", "CatalogUnavailable", "CustodyBroken", "CustodyEvent",
    "CustodyKind", "Device", "DockSession", "IntegrityStatus", "MediaKind", "Near", "Officer", "Recording",
    "RecordingNotFound", "RecordingState", "SearchFilters", "Sighting", "Stamp", "StampInvalid",
    "StampRevision", "Station", "append_event",
    "MANIFEST_FORMAT", "SignatureInvalid", "build_manifest", "ensure_station_key", "load_or_create_key",
    "read_manifest", "trusted_fingerprints", "write_manifest", "ensure_device", "ensure_officer", "ensure_station",
    "find_by_sha256", "find_chain_breaks", "find_known_sighting", "get_recording", "load_chain",
    "open_catalog", "record_stamp", "recording_as_json", "redact_url", "restamp", "run_search",
    "sightings_of", "stamp_history", "validate_stamp",
]
