"""Build the parts a command needs from Settings: the catalog engine and the WORM store."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine

from catalog import open_catalog
from ingest.config import Settings
from storage import EvidenceStore, LocalStore, S3WormStore, make_s3_client

__all__ = ["catalog_engine", "open_store"]


def open_store(settings: Settings, *, check: bool = True) -> EvidenceStore:
    """The configured WORM store; an S3 bucket is checked for versioning + Object Lock first."""
    if settings.s3 is None:
        return LocalStore(settings.store_path)
    s3 = settings.s3
    client = make_s3_client(endpoint_url=s3.endpoint, access_key=s3.access_key,
                            secret_key=str(s3.secret_key) if s3.secret_key else None, region=s3.region,
                            max_pool=max(10, s3.concurrency * 2))
    store = S3WormStore(client=client, bucket=s3.bucket, prefix=s3.prefix,
                        multipart_threshold_bytes=s3.multipart_threshold_bytes, part_size_bytes=s3.part_size_bytes,
                        max_concurrency=s3.concurrency)
    if check:
        store.check_bucket()
    return store


@contextmanager
def catalog_engine(settings: Settings) -> Iterator[Engine]:
    engine = open_catalog(settings.database_url)
    try:
        yield engine
    finally:
        engine.dispose()  # return pooled connections now, not at interpreter exit
