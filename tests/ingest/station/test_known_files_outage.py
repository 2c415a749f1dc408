"""A catalogue outage never re-reads the files of a device the station has already catalogued (issue 14, item 7):
the station keeps its own record of them (ingest.known_files) and trusts it as it trusts the catalogue's sightings."""
from __future__ import annotations

import pytest

from catalog import open_catalog
from ingest import known_files
from ingest.config import Settings
from ingest.errors import CatalogueDeferred
from ingest.pipeline import ingest_folder
from ingest.pipeline import run as pipeline  # the module whose names the tests replace
from ingest.samples import make_wav
from ingest.transfer import copy_and_hash
from storage import LocalStore

pytestmark = pytest.mark.usefixtures("ffmpeg_available")


@pytest.mark.postgres
def test_outage_does_not_reread_known_files(samples, tmp_path, pg_outage, monkeypatch):
    url, down, _allow = pg_outage
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "h"), "EVIDENCE_DATABASE_URL": url})
    store = LocalStore(settings.store_path)
    engine = open_catalog(url)
    device = samples.sidecar_recorder
    copies = []
    real = copy_and_hash

    def counting(source, *a, **k):
        copies.append(str(source))
        return real(source, *a, **k)

    monkeypatch.setattr(pipeline, "copy_and_hash", counting)
    try:
        first = ingest_folder(device, settings=settings, engine=engine, store=store)
        n = len(copies)
        assert n >= 4 and first.errors == []
        serial = first.device_serial
        known = known_files.load(settings.home, serial)
        assert len(known) == n, (len(known), n)
        # A new file arrives on the device; then the catalogue goes away and the device is docked again
        make_wav(device / "CLIPS" / "CLIP0009.wav", seconds=1.0)
        copies.clear()
        with down(), pytest.raises(CatalogueDeferred) as info:
            ingest_folder(device, settings=settings, engine=engine, store=store)
        assert [c.rsplit("/", 1)[1] for c in copies] == ["CLIP0009.wav"], copies
        assert info.value.journaled == 1
        # Back: the journaled file is catalogued from staging, nothing read again; the record grows by one
        copies.clear()
        third = ingest_folder(device, settings=settings, engine=engine, store=store)
        assert copies == [] and third.errors == []
        assert len(known_files.load(settings.home, serial)) == n + 1
        # A file removed from the device leaves the record at the next completed dock
        (device / "CLIPS" / "CLIP0009.wav").unlink()
        ingest_folder(device, settings=settings, engine=engine, store=store)
        assert len(known_files.load(settings.home, serial)) == n
    finally:
        engine.dispose()
