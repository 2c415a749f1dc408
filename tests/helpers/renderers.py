"""Waiting for the renderers a test's command or web request started in the background (ingest.media_work
.start_renderer): each is waited for by its own process object, so none outlives the test or works on in a
folder or database the test is removing."""
from __future__ import annotations


def wait_for_renderers(timeout_s: float = 180.0) -> int:
    """Wait for every renderer this process started to exit; how many there were."""
    from ingest.media_work import _STARTED

    for proc in list(_STARTED):
        proc.wait(timeout=timeout_s)
        _STARTED.remove(proc)
    return len(_STARTED)
