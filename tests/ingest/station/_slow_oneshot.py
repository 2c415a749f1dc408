"""A one-shot ingest at a station, slowed down as a large device is (a test helper run as its own process by
tests/ingest/station/test_attack_live_dock.py): describing each file waits 1.5 s."""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import pytest

import ingest.pipeline.run as pipeline
from catalog import open_catalog
from ingest.config import Settings
from ingest.describe.probe import gather_facts
from ingest.pipeline import IngestOptions
from storage import LocalStore

real = gather_facts


def slow(*args, **kwargs):
    time.sleep(1.5)  # the slowness is what is tested: the dock is still running while a station starts beside it
    return real(*args, **kwargs)


pytest.MonkeyPatch().setattr(pipeline, "gather_facts", slow)  # the name run.py calls, for this whole process
home, database, device = sys.argv[1:4]
settings = Settings.from_env({"EVIDENCE_HOME": home, "EVIDENCE_DATABASE_URL": database})
engine = open_catalog(database)
report = pipeline.ingest_folder(Path(device), settings=settings, engine=engine, store=LocalStore(settings.store_path),
                                options=IngestOptions(actor="cli"))
print("DOCK", report.dock_session_id, "errors", report.errors, flush=True)
