"""The evidence catalog: tables, migrations, custody chain, stamps, search, cases, retention and disposal."""
from catalog.cases import (
    active_links,
    adopt_stamped,
    case_as_json,
    cases_of,
    close_case,
    create_case,
    get_case,
    link_recording,
    list_cases,
    reopen_case,
    unlink_recording,
    validate_case,
)
from catalog.custody import CustodyKind, append_event, find_chain_breaks, load_chain
from catalog.db import open_catalog, redact_url
from catalog.disposal import PlanItem, Signer, approve_batch, plan_disposal, start_sweep
from catalog.errors import (
    CaseInvalid,
    CaseNotFound,
    CaseStateError,
    CatalogError,
    CatalogUnavailable,
    CustodyBroken,
    DisposalError,
    ExportFailed,
    PermissionDenied,
    PolicyInvalid,
    RecordingNotFound,
    StampInvalid,
    UserInvalid,
)
from catalog.manifests import (
    MANIFEST_FORMAT,
    build_manifest,
    ensure_station_key,
    read_manifest,
    trusted_fingerprints,
    write_manifest,
)
from catalog.models import (
    ArchiveClaim,
    Case,
    CaseLink,
    CaseStatus,
    CustodyEvent,
    DerivedMedia,
    Device,
    Disposal,
    DisposalBatch,
    DisposalStatus,
    DockResult,
    DockSession,
    IntegrityStatus,
    MediaKind,
    Officer,
    OutboxMessage,
    Recording,
    RecordingState,
    Sighting,
    StampRevision,
    Station,
    User,
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
from catalog.retention import (
    DEFAULT_CASE_TYPES,
    CaseFacts,
    CaseType,
    RetentionDecision,
    RetentionPolicy,
    decide_retention,
    disposal_due,
    load_case_types,
)
from catalog.retention_job import RetentionChange, apply_retention, decide_for
from catalog.search import Near, SearchFilters, run_search
from catalog.signing import SignatureInvalid, load_or_create_key
from catalog.stamps import DEFAULT_CASE_PATTERN, Stamp, record_stamp, restamp, stamp_history, validate_stamp

__all__ = [
    "ArchiveClaim", "OutboxMessage",
    "ExportFailed", "PermissionDenied", "UserInvalid", "User",
    "DEFAULT_CASE_TYPES", "Case", "CaseFacts", "CaseInvalid", "CaseLink", "CaseNotFound", "CaseStateError",
    "CaseStatus", "CaseType", "Disposal", "DisposalBatch", "DisposalError", "DisposalStatus", "PlanItem",
    "PolicyInvalid", "RetentionChange", "RetentionDecision", "RetentionPolicy", "Signer", "active_links",
    "adopt_stamped", "apply_retention", "approve_batch", "case_as_json", "cases_of", "close_case", "create_case",
    "decide_for", "decide_retention", "disposal_due", "get_case", "link_recording", "list_cases",
    "load_case_types", "plan_disposal", "reopen_case", "start_sweep", "unlink_recording", "validate_case",
    "DEFAULT_CASE_PATTERN", "DerivedMedia", "CatalogError", "CatalogUnavailable", "CustodyBroken", "CustodyEvent",
    "CustodyKind", "Device", "DockResult", "DockSession", "IntegrityStatus", "MediaKind", "Near", "Officer",
    "Recording", "RecordingNotFound", "RecordingState", "SearchFilters", "Sighting", "Stamp", "StampInvalid",
    "StampRevision", "Station", "append_event",
    "MANIFEST_FORMAT", "SignatureInvalid", "build_manifest", "ensure_station_key", "load_or_create_key",
    "read_manifest", "trusted_fingerprints", "write_manifest", "ensure_device", "ensure_officer", "ensure_station",
    "find_by_sha256", "find_chain_breaks", "find_known_sighting", "get_recording", "load_chain",
    "open_catalog", "record_stamp", "recording_as_json", "redact_url", "restamp", "run_search",
    "sightings_of", "stamp_history", "validate_stamp",
]
