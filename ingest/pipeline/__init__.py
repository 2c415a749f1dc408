"""One-shot ingest of a docked device or a folder.

For each recording: skip it if this device already gave us these bytes;
copy + hash in one pass into staging; describe it from the staging copy
(in parallel with the next copy); stamp it; put it in the WORM store;
record everything as custody events. One bad file is reported and never
stops the rest; a file is never lost: if the store refuses it, it stays in
staging as `staged` and is archived on the next run.

The modules: `run` (the run loop, `ingest_folder`), `dock` (opening the dock session), `register` (cataloguing
and batched commits), `uploads` (archiving beside the copies), `outage` (the journal while the catalogue is
away), `offline` (`catalogue_journal`), `closing` (ending the session), `report` (`IngestReport`), `options`,
`device`, `known`, `cataloguing` (a staged copy's catalogue row).
"""
from __future__ import annotations

from ingest.pipeline.dock import busy_serials
from ingest.pipeline.offline import catalogue_journal
from ingest.pipeline.options import AfterCommit, IngestOptions, Progress
from ingest.pipeline.report import (
    DiscardedItem,
    ErrorItem,
    ErrorStage,
    IngestedItem,
    IngestOutcome,
    IngestReport,
    SkippedItem,
)
from ingest.pipeline.run import ingest_folder

__all__ = ["AfterCommit", "DiscardedItem", "ErrorItem", "ErrorStage", "IngestOptions", "IngestOutcome",
           "IngestReport", "IngestedItem", "Progress", "SkippedItem", "busy_serials", "catalogue_journal",
           "ingest_folder"]
