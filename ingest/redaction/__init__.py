"""Redaction (issue 18, part 2): a validated specification (`spec`: still, moving and tracked regions, muted and
bleeped ranges), its rendering by ffmpeg (`render`), faces found automatically (`faces`), regions followed by a
tracker (`tracking`), the redacted copy kept as a
recording of its own (`derivative`), and redaction jobs run on the derive queue with their progress (`jobs`).
docs/redaction.md says what is built and what is not.
"""
from ingest.redaction.render import render_redaction
from ingest.redaction.spec import (
    Box,
    Keyframe,
    Moving,
    Mute,
    RedactionInvalid,
    RedactionSpec,
    parse_box,
    parse_moving,
    parse_mute,
    parse_track,
    spec_problems,
)

__all__ = ["Box", "Keyframe", "Moving", "Mute", "RedactionInvalid", "RedactionSpec", "parse_box", "parse_moving",
           "parse_mute", "parse_track", "render_redaction", "spec_problems"]
