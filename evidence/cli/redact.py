"""`evidence redact ID`: a redacted copy of a recording (regions of the picture pixelated, ranges of the sound
muted), kept as a recording of its own beside the untouched original (ingest.redaction.derivative)."""
from __future__ import annotations

from typing import Any

import click

from catalog import get_recording
from evidence.cli.common import caller, catalogue, fail, person, print_json
from evidence.cli.options import by_option, json_option

__all__ = ["redact", "redact_job"]


@click.command()
@click.argument("ref")
@click.option("--box", "boxes", multiple=True, metavar="START-END:X,Y,W,H",
              help="A region to hide from START to END (seconds or [HH:]MM:SS), in pixels of the original frame; "
                   "X,Y,W,H alone: the whole recording (a photo). Repeat for more.")
@click.option("--moving", "movings", multiple=True, metavar="T:X,Y,W,H;T:X,Y,W,H",
              help="A region that moves (a plate, a passer-by): its place at two or more times, interpolated in "
                   "between; hidden from the first time to the last. Repeat for more.")
@click.option("--track", "tracks", multiple=True, metavar="START-END:X,Y,W,H",
              help="A region to follow from where it is at START until END (OpenCV's MIL tracker, ten times a "
                   "second; its keyframes are recorded and shown for review). Repeat for more.")
@click.option("--faces", is_flag=True, help="Also hide every face the detector finds (CenterFace; a person reviews "
                                            "the result: what it does not see is not hidden).")
@click.option("--face-threshold", type=click.FloatRange(0.05, 0.95), default=None,
              help="The detector's score above which a face counts (default 0.3; lower hides more).")
@click.option("--mute", "mutes", multiple=True, metavar="START-END", help="A range of the sound to silence. Repeat.")
@click.option("--bleep", "bleeps", multiple=True, metavar="START-END",
              help="A range of the sound to replace with a 1 kHz tone. Repeat.")
@click.option("--block", type=click.IntRange(min=1), default=16, show_default=True,
              help="Pixelation block, pixels of the original frame (at least 8).")
@click.option("--reason", required=True, help="Why the copy is made (recorded with it, and as the reason for "
                                              "reading the original).")
@click.option("--queue", is_flag=True,
              help="Hand the rendering to the derive queue (as the web app does) and return at once with the job; "
                   "where no broker is configured, the installation's renderer is started for it.")
@by_option
@json_option
def redact(ref: str, boxes: tuple[str, ...], movings: tuple[str, ...], tracks: tuple[str, ...], faces: bool,
           face_threshold: float | None, mutes: tuple[str, ...], bleeps: tuple[str, ...], block: int, reason: str,
           queue: bool, by: str | None, as_json: bool) -> None:
    """Make a redacted copy of a recording: a new recording with its own SHA-256, WORM copy and signed manifest
    naming the original and what was hidden. The original is not changed."""
    from catalog.signing import load_or_create_key
    from ingest.derive import FfmpegRefused
    from ingest.redaction import RedactionInvalid, RedactionSpec, parse_box, parse_moving, parse_mute, parse_track
    from ingest.redaction.derivative import redact_recording
    from ingest.redaction.faces import FaceSearch, FacesUnavailable
    from ingest.services import open_store

    try:
        spec = RedactionSpec(boxes=tuple(parse_box(b) for b in boxes), mutes=tuple(parse_mute(m) for m in mutes),
                             block=block, moving=tuple(parse_moving(m) for m in movings),
                             bleeps=tuple(parse_mute(b) for b in bleeps), tracks=tuple(parse_track(t) for t in tracks))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    search = None
    if faces:
        search = FaceSearch(threshold=face_threshold) if face_threshold is not None else FaceSearch()
    elif face_threshold is not None:
        raise click.UsageError("--face-threshold is for --faces")
    with catalogue() as (cfg, session):
        identity = caller(cfg, session, "redact", by)
        original = get_recording(session, ref)
        if queue:
            _queue(cfg, session, person(session, identity), original, spec, search, reason, as_json)
            return
        try:
            made = redact_recording(session, open_store(cfg), cfg, original, spec, user=person(session, identity),
                                    reason=reason, key=load_or_create_key(cfg.station_key_path), via="cli redact",
                                    faces=search)
        except RedactionInvalid as exc:
            fail(f"recording {original.id} cannot be redacted as asked: {exc}", 2)
        except FacesUnavailable as exc:
            fail(str(exc), 3)
        except (FfmpegRefused, ValueError) as exc:  # ffmpeg's refusal, or its run past the time allowed
            fail(f"rendering the redaction of recording {original.id} failed: {exc}", 2)
        except OSError as exc:
            fail(f"the redaction of recording {original.id} could not be written to staging: {exc}", 3)
        copy = made.recording
        data: dict[str, Any] = {
            "recording_id": copy.id, "original_id": original.id, "version": made.version, "new": made.new,
            "sha256": copy.sha256, "original_sha256": original.sha256, "name": copy.original_name,
            "state": copy.state, "size_bytes": copy.size_bytes, "sensitivity": copy.sensitivity,
            "spec": ((copy.technical or {}).get("redaction") or {}).get("spec", spec.as_json())}
    if as_json:
        print_json(data)
        return
    click.echo(f"recording {data['recording_id']} is {'the' if data['new'] else 'an existing'} redacted copy "
               f"(version {data['version']}) of recording {data['original_id']}: {data['name']}, "
               f"sha256 {data['sha256']}, {data['state']}; the original ({data['original_sha256'][:16]}…) is unchanged")


def _queue(cfg: Any, session: Any, user: Any, original: Any, spec: Any, search: Any, reason: str,
           as_json: bool) -> None:
    """`--queue`: the job asked for (ingest.redaction.jobs.request_redaction, the web app's call), then a renderer
    started where no broker is configured."""
    from catalog.redaction_jobs import job_as_json
    from ingest.media_work import start_renderer
    from ingest.redaction import RedactionInvalid
    from ingest.redaction.jobs import request_redaction

    try:
        job = request_redaction(session, user=user, original=original, spec=spec, faces=search, reason=reason,
                                via="cli redact --queue")
    except RedactionInvalid as exc:
        fail(f"recording {original.id} cannot be redacted as asked: {exc}", 2)
    data = job_as_json(job)
    if not cfg.broker_url:
        data["renderer_pid"] = start_renderer(cfg)
    if as_json:
        print_json(data)
        return
    click.echo(f"redaction job {data['id']} of recording {original.id} queued; follow it with the web app's "
               f"/redactions/{data['id']} or `evidence redact-job {data['id']}`")


@click.command("redact-job")
@click.argument("job_id", type=int)
@by_option
@json_option
def redact_job(job_id: int, by: str | None, as_json: bool) -> None:
    """A redaction job: its state, stage, progress, the copy it made or why it failed (the original must be one
    the caller may view: scope and class)."""
    from catalog.access import check_access
    from catalog.redaction_jobs import get_job, job_as_json

    with catalogue() as (cfg, session):
        user = person(session, caller(cfg, session, "redact", by))
        job = get_job(session, job_id)
        if job is None:
            fail(f"no redaction job {job_id}", 2)
        check_access(session, user, [get_recording(session, str(job.original_id))], step="view", reason=None,
                     policy=cfg.access_reason, action="redact")
        data = job_as_json(job)
    if as_json:
        print_json(data)
        return
    click.echo(f"redaction job {data['id']} of recording {data['original_id']}: {data['state']} ({data['stage']}, "
               f"{data['progress'] * 100:.0f} %)" + (f"; copy: recording {data['copy_id']}" if data["copy_id"] else "")
               + (f"; {data['error']}" if data["error"] else ""))
