"""The local store's seals reach `evidence verify`: an object file made writable (or given a second hard link) by
someone with the store account's rights is named there with its path, even while its bytes are still right — the
next step of such an attacker would be to rewrite it."""
from __future__ import annotations

import os
import stat

import pytest

from storage import object_key
from tests.helpers.cli_archive import ingest_recorder, store_of, verify_all

pytestmark = pytest.mark.usefixtures("ffmpeg_available")


def test_an_unsealed_or_hard_linked_object_is_named_by_verify(env, tmp_path):
    first, second = (ingest_recorder(env, tmp_path, n)[0] for n in ("seal-a", "seal-b"))
    code, report = verify_all(env)
    assert code == 0, report["problems"]

    store = store_of(env)
    unsealed = store.root / "objects" / object_key(first["sha256"])
    os.chmod(unsealed, stat.S_IMODE(os.lstat(unsealed).st_mode) | stat.S_IWUSR)
    linked = store.root / "objects" / object_key(second["sha256"])
    os.link(linked, tmp_path / "a-second-name")  # a way to rewrite it later without touching the store's folder

    code, report = verify_all(env)
    assert code == 4
    seals = {p["recording_id"]: p["detail"] for p in report["problems"] if p["kind"] == "seal"}
    assert set(seals) == {first["id"], second["id"]}, report["problems"]
    assert str(unsealed) in seals[first["id"]] and str(linked) in seals[second["id"]]
