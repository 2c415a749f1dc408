"""The ingest report: typed items that stay plain JSON-shaped dicts, and the counts its readers need."""
from __future__ import annotations

import json
from datetime import UTC, datetime

from catalog import DockSession, Recording, recording_as_json
from ingest.pipeline import ErrorStage, IngestOutcome, IngestReport
from ingest.pipeline.closing import dock_result, result_note


def _recording(recording_id: int, *, implausible: bool = False, hold: bool = False) -> Recording:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    return Recording(id=recording_id, sha256=f"{recording_id:064x}", size_bytes=10, media_kind="video",
                     original_name=f"CLIP{recording_id}.MP4", station_code="ST1", time_source="device",
                     time_implausible=implausible, legal_hold=hold, integrity_status="ok", state="archived",
                     ingested_at=now, technical={})


def _report() -> IngestReport:
    report = IngestReport(dock_session_id=7, profile="generic", device_serial="CAM1")
    report.add_recording(_recording(1), IngestOutcome.NEW, "DCIM/CLIP1.MP4")
    report.add_recording(_recording(2, implausible=True, hold=True), IngestOutcome.NEW, "DCIM/CLIP2.MP4")
    report.add_recording(_recording(3), IngestOutcome.KNOWN, "DCIM/CLIP3.MP4")
    report.add_skipped("DCIM/CLIP4.MP4", "already ingested as recording 4")
    report.add_discarded("MISC/log.txt", "not evidence")
    report.add_error("DCIM/CLIP5.MP4", ErrorStage.COPY, "read error", preserved=False)
    return report


def test_report_items_are_the_recording_json_plus_outcome_and_device_path():
    report = _report()
    first = report.recordings[0]
    assert first == {**recording_as_json(_recording(1)), "ingest": "new", "device_path": "DCIM/CLIP1.MP4"}
    assert list(first)[-2:] == ["ingest", "device_path"]
    assert first.get("ingest") == "new" and report.recordings[2]["ingest"] == "known"


def test_report_json_is_plain_strings_as_before():
    # Given a report with every item kind
    report = _report()
    # When it is written as JSON
    text = json.dumps(report.as_json())
    # Then the enum values are the strings they always were, and the keys are those they were (the background
    # renderer's process id added last, null when none was started)
    loaded = json.loads(text)
    assert list(loaded) == ["dock_session", "profile", "device_serial", "recordings", "skipped", "discarded",
                            "errors", "notes", "renderer_pid"]
    assert loaded["renderer_pid"] is None
    assert [r["ingest"] for r in loaded["recordings"]] == ["new", "new", "known"]
    assert loaded["errors"] == [{"file": "DCIM/CLIP5.MP4", "stage": "copy", "reason": "read error",
                                 "preserved": False}]
    assert loaded["skipped"] == [{"file": "DCIM/CLIP4.MP4", "reason": "already ingested as recording 4"}]
    assert loaded["discarded"] == [{"file": "MISC/log.txt", "reason": "not evidence"}]
    assert '"ingest": "new"' in text and '"stage": "copy"' in text


def test_report_summary_counts_what_the_cli_and_station_show():
    report = _report()
    assert (report.new_count, report.known_count, report.implausible_count, report.held_count) == (2, 1, 1, 1)
    assert report.error_lines() == ["DCIM/CLIP5.MP4: read error"]
    assert report.discarded_lines() == ["MISC/log.txt: not evidence"]
    assert not report.all_preserved and not report.device_went_away


def test_refresh_shows_a_recording_as_it_is_now_in_place():
    report = _report()
    entry = report.recordings[0]
    changed = _recording(1)
    changed.belongs_to_id = 9
    report.refresh(changed)
    assert report.recordings[0] is entry and entry["belongs_to"] == 9 and entry["ingest"] == "new"


def test_dock_result_and_note_say_why_a_dock_did_not_complete():
    report = _report()
    assert dock_result(IngestReport(), stopped=False) == "complete"
    assert dock_result(report, stopped=False) == "partial"
    assert dock_result(report, stopped=True) == "interrupted"
    report.add_error("/media/cam", ErrorStage.DEVICE, "unplugged", preserved=False)
    assert dock_result(report, stopped=False) == "interrupted"
    dock = DockSession(station_code="ST1", device_serial="CAM1", profile="generic", source_path="/media/cam",
                       files_seen=5, files_new=2, files_known=1, files_failed=1)
    note = result_note(dock, report, stopped=False, archive_messages=2, unsent_messages=1, from_journal=0)
    assert note == ("5 file(s) read: 2 new, 1 already known, 1 skipped, 1 failed; the device went away: unplugged; "
                    "1 error(s), first: DCIM/CLIP5.MP4: read error; 2 archive message(s) written to the outbox, "
                    "1 not yet taken by the broker when the dock ended (the relay hands them over as soon as it "
                    "answers)")
    again = result_note(dock, IngestReport(), stopped=False, archive_messages=0, unsent_messages=0, from_journal=2)
    assert again == ("5 file(s) read (2 of them copied at an earlier dock and journaled): 2 new, 1 already known, "
                     "0 skipped, 1 failed")


def test_a_dock_session_is_never_seen_ended_without_its_note(tmp_path, settings, engine, store):
    # Stations, the kiosk and the fault suite read dock sessions while a dock runs: every commit that shows one
    # ended (finished_at, result) also holds the note that says how (caught by the fault suite on 2026-12-02: an
    # ended session read between two commits had no note)
    from sqlalchemy import event
    from sqlmodel import Session as SQLSession

    from ingest.pipeline import ingest_folder
    from ingest.samples import make_photo

    folder = tmp_path / "cam" / "DCIM" / "100EVCAM"
    folder.mkdir(parents=True)
    for n in range(3):
        make_photo(folder / f"IMG_{n:04d}.JPG", size="64x48")
    seen: list[tuple[object, object, object]] = []

    def before_commit(session: SQLSession) -> None:
        for obj in list(session.identity_map.values()) + list(session.new):
            if isinstance(obj, DockSession) and obj.finished_at is not None:
                seen.append((obj.finished_at, obj.result, obj.result_note))

    event.listen(SQLSession, "before_commit", before_commit)
    try:
        report = ingest_folder(tmp_path / "cam", settings=settings, engine=engine, store=store)
    finally:
        event.remove(SQLSession, "before_commit", before_commit)
    assert len(report.recordings) == 3
    assert seen and all(note for _finished, _result, note in seen), seen
