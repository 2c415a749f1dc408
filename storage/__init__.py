"""WORM evidence storage: the store interface, implementations, retention rules and stream hashing."""
from storage.backend import EvidenceStore, Leftover, StoredObject, derived_key, manifest_key, object_key, record_key
from storage.backends.local import LocalStore
from storage.backends.local_tree import fsync_dir, fsync_path
from storage.backends.s3_worm import S3WormStore, make_s3_client
from storage.errors import (
    BackendUnavailable,
    BucketNotWorm,
    HashMismatch,
    IntegrityError,
    ObjectExists,
    ObjectLocked,
    ObjectMissing,
    RetentionRefused,
    SealBroken,
    StorageError,
)
from storage.hashing import CHUNK_BYTES, Hashed, hash_file, hash_stream, hashed_chunks
from storage.retention import (
    MIN_ROUTINE_MONTHS,
    compute_retain_until,
    is_disposable,
    validate_extension,
    validate_routine_months,
)

__all__ = [
    "CHUNK_BYTES", "MIN_ROUTINE_MONTHS", "BackendUnavailable", "BucketNotWorm", "EvidenceStore", "HashMismatch",
    "Hashed", "IntegrityError", "Leftover",
    "LocalStore", "ObjectExists", "ObjectLocked", "ObjectMissing", "RetentionRefused", "S3WormStore",
    "SealBroken", "StorageError", "StoredObject", "compute_retain_until", "derived_key", "fsync_dir", "fsync_path",
    "hash_file",
    "hash_stream", "hashed_chunks", "is_disposable",
    "make_s3_client", "manifest_key", "object_key", "record_key", "validate_extension", "validate_routine_months",
]
