"""WORM store implementations."""
from storage.backends.local import LocalStore

__all__ = ["LocalStore"]
