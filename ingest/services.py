"""Build the parts a command needs from Settings: the catalog engine and the WORM store."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from catalog import CatalogUnavailable, open_catalog
from catalog.policy_adoption import ensure_policy
from ingest.config import S3Settings, Settings
from storage import BackendUnavailable, EvidenceStore, LocalStore, S3WormStore, make_s3_client

__all__ = ["DEFAULT_UPLOAD_THREADS", "catalog_engine", "check_policy_at_start", "check_store_at_start", "open_store",
           "s3_pool_size"]

logger = logging.getLogger(__name__)

#: Threads of one process that may upload at once when the caller does not say: `evidence worker`'s default
#: 4 archive threads + 1 derive thread, with room to spare.
DEFAULT_UPLOAD_THREADS = 8
#: Connections beyond the uploads: HEADs, retention calls, verify/derive reads, the scheduler's anchor.
_POOL_HEADROOM = 8


def s3_pool_size(s3: S3Settings, upload_threads: int) -> int:
    """Connections one S3 client may keep: every uploading thread sends up to `concurrency` parts at once plus its
    own create/complete/HEAD calls, and a few other calls run beside them. urllib3 discards (and logs "Connection
    pool is full") any connection returned to a full pool, so a pool smaller than this reconnects all the time."""
    return max(10, upload_threads * (s3.concurrency + 1) + _POOL_HEADROOM)


def open_store(settings: Settings, *, check: bool = True,
               upload_threads: int = DEFAULT_UPLOAD_THREADS) -> EvidenceStore:
    """The configured WORM store; an S3 bucket is checked for versioning + Object Lock first. Unchecked, an S3
    store connects when it is first used.

    *upload_threads*: how many threads of this process may archive at once (`worker --archive-threads` plus its
    derive threads), which sizes the S3 connection pool (s3_pool_size).
    """
    if settings.s3 is None:
        return LocalStore(settings.store_path)
    s3 = settings.s3
    connect = partial(make_s3_client, endpoint_url=s3.endpoint, access_key=s3.access_key,
                      secret_key=str(s3.secret_key) if s3.secret_key else None, region=s3.region,
                      max_pool=s3_pool_size(s3, upload_threads))
    store = S3WormStore(connect=connect, bucket=s3.bucket, prefix=s3.prefix,
                        multipart_threshold_bytes=s3.multipart_threshold_bytes, part_size_bytes=s3.part_size_bytes,
                        max_concurrency=s3.concurrency, readback=s3.readback)
    if check:
        store.check_bucket()
    return store


def check_store_at_start(settings: Settings, command: str) -> bool:
    """The start check of `station watch`, `worker` and `archive-pending`: is the WORM store fit for evidence?

    A bucket that answers without versioning or Object Lock (or does not exist) is a configuration that never
    heals: BucketNotWorm propagates and the command exits 2 naming the bucket. A store that does not answer is
    an outage: the station keeps copying into staging and the queue keeps the archive work (store-and-forward),
    so a WARNING is logged and False returned; the command starts. Any other refusal (credentials, access
    denied) propagates as the StorageError it is.
    """
    try:
        store = open_store(settings, check=False, upload_threads=1)
        if isinstance(store, S3WormStore):
            try:
                store.check_bucket()
            finally:
                store.client.close()
    except BackendUnavailable as exc:
        logger.warning("%s starts although the WORM store does not answer (%s); recordings stay staged and are "
                       "archived when it does.", command, exc)
        return False
    return True


def check_policy_at_start(settings: Settings, command: str, *, adopt_as: str | None) -> bool:
    """The other start check of `station watch`, `worker`, `archive-pending`, `ingest`, `demo` and `serve`: this
    process's retention policy is the one the catalogue adopted (catalog.policy_adoption.ensure_policy). With none
    adopted yet, *adopt_as* (the station's authorised identity) adopts it; `serve` (None) starts without one.
    Other terms never heal by waiting: PolicyNotAdopted propagates and the command exits 2 naming both and every
    difference. A catalogue that does not answer is an outage the station and queue ride out: a WARNING, False,
    and the command starts (the functions that write retention check again)."""
    try:
        with catalog_engine(settings) as engine, Session(engine) as session:
            ensure_policy(session, settings.policy_terms, command=command, adopt_as=adopt_as, required=False)
    except (CatalogUnavailable, OperationalError) as exc:
        logger.warning("%s starts although the catalogue does not answer (%s); its retention policy is checked "
                       "when it does.", command, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return False
    return True


@contextmanager
def catalog_engine(settings: Settings) -> Iterator[Engine]:
    engine = open_catalog(settings.database_url)
    try:
        yield engine
    finally:
        engine.dispose()  # return pooled connections now, not at interpreter exit
