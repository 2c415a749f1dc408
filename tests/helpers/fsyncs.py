"""Which files were fsynced: os.fsync spied on for the length of a test."""
from __future__ import annotations

import os

import pytest


def spy_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the files os.fsync is called on from now on, in order (each fsync still happens)."""
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return synced
