"""WORM store implementations."""
from storage.backends.local import LocalStore
from storage.backends.s3_worm import S3WormStore, make_s3_client

__all__ = ["LocalStore", "S3WormStore", "make_s3_client"]
