"""Getting recordings off devices and into the archive, in the order the bytes flow.

* pull: `scan` lists a device's files, `names` keeps their names safe, `transfer` copies and hashes in one read
  pass, `journal` records every staged copy before it is catalogued, `known_files` remembers what a device gave.
* describe/: what each staged file is (structure, probe, identity, metadata).
* pipeline/: one ingest run of a device or folder, and the catalogue row of each file (cataloguing).
* archiving, derive, decode_check, documents, anchoring: the jobs on staged and archived recordings.
* queue/: the broker, actors, workers and outbox relay that run those jobs off the station.
* station/: the unattended station that docks recorders and runs the pipeline for each.
* config (Settings, the only reader of the environment) with settings_table (every EVIDENCE_* variable: default,
  parser, help) and settings_parsers; services (engine and store built from Settings); errors.
"""
from ingest.config import Settings
from ingest.pipeline import IngestOptions, IngestReport, ingest_folder

__all__ = ["IngestOptions", "IngestReport", "Settings", "ingest_folder"]
