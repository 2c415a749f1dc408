"""dramatiq interrupts a message that runs longer than its actor's time limit, 10 minutes unless the actor says
otherwise: before the actors said, an upload or read-back of a large file on a slow link, and a decode check or
proxy of a long recording, were cut at 10 minutes and retried from the start, forever. Here the broker's default
is lowered to one second and the decode is made to take several: the decode check still finishes with its
verdict, because the actor's own limit stands above its work's deadlines."""
from __future__ import annotations

import os
import shutil

import pytest
from dramatiq.middleware import TimeLimit

from catalog import load_or_create_key
from ingest.decode_check import MAX_TIMEOUT_S
from ingest.derive import PROXY_TIMEOUT_S
from ingest.pipeline import IngestOptions
from ingest.queue.actors import queue_names
from ingest.queue.connection import open_queue
from ingest.queue.workers import run_ingest
from ingest.services import open_store
from tests.helpers.clips import ffmpeg_shim, noisy_clip
from tests.helpers.media_work import ids_by_name, media_work_of
from tests.helpers.queues import drain

pytestmark = pytest.mark.usefixtures("ffmpeg_available")


def test_a_decode_longer_than_the_brokers_default_limit_finishes(tmp_path, settings, engine, monkeypatch):
    # Given an archived video whose decode takes about 3 s (an ffmpeg that waits before it decodes)
    folder = tmp_path / "cam" / "DCIM" / "100EVCAM"
    folder.mkdir(parents=True)
    shutil.copyfile(noisy_clip(tmp_path / "video.mp4"), folder / "MVI_0001.MP4")
    recording = ids_by_name(run_ingest(tmp_path / "cam", settings, IngestOptions(), derive="later"))["MVI_0001.MP4"]
    shim = ffmpeg_shim(tmp_path / "bin", 'case "$*" in *"-f null"*) sleep 3;; esac\n')
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    queue = open_queue(settings, engine=engine, store=open_store(settings),
                       key=load_or_create_key(settings.station_key_path))
    try:
        # and a broker whose default time limit is one second
        (limit,) = [m for m in queue.broker.middleware if isinstance(m, TimeLimit)]
        limit.time_limit = 1000
        # Then every actor's own limit stands above its work's deadlines, whatever the broker's default
        options = {name: getattr(queue.actors, name).options.get("time_limit", limit.time_limit)
                   for name in ("archive", "verify", "derive", "decode_check", "fixity")}
        assert options["decode_check"] > 3 * MAX_TIMEOUT_S * 1000  # on S3: a URL decode, then two from a copy
        assert options["derive"] > 2 * PROXY_TIMEOUT_S * 1000
        assert min(options["archive"], options["verify"]) >= 12 * 3600 * 1000
        # (a fixity sample is sent every hour: its limit stays under that, so samples never pile up)
        assert 10 * 60 * 1000 < options["fixity"] < 3600 * 1000
        # And the slow decode runs to its verdict instead of being interrupted at the broker's default
        queue.actors.decode_check.send(recording)
        drain(queue.broker, queue_names("evidence", settings.station)["derive"], fail_fast=True)
    finally:
        queue.broker.close()
    assert "decode:ok" in media_work_of(engine)[recording]
