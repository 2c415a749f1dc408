"""Redaction (issue 18, part 2): a validated specification (`spec`) and its rendering by ffmpeg (`render`).

Built so far: manual regions pixelated over a time range, and audio ranges muted. Not yet: automatic faces, the
redacted derivative as a recording of its own (row, WORM copy, signed manifest naming the original), the
`evidence redact` command and the browser review (docs/sensitivity.md says what is missing).
"""
from ingest.redaction.render import render_redaction
from ingest.redaction.spec import Box, Mute, RedactionInvalid, RedactionSpec, parse_box, parse_mute, spec_problems

__all__ = ["Box", "Mute", "RedactionInvalid", "RedactionSpec", "parse_box", "parse_mute", "render_redaction",
           "spec_problems"]
