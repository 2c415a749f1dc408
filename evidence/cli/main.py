"""The `evidence` command line (a public contract: JSON goes to stdout).

Exit codes: 0 done (every file preserved, even if some are damaged);
1 some file could not be preserved; 2 bad input or configuration;
3 the catalog or the store is unavailable; 4 evidence failed an integrity
or signature check.

This module is the entry point: the `main` group, the log set-up, and the
commands, each group in its own module (evidence.cli.ingest, recordings,
station, cases, retention, verify, users, serve, integrity, keys).
"""
from __future__ import annotations

import importlib
import logging

import click

__all__ = ["configure_logging", "main"]

#: Each command and the module that defines it (imported when the command is run or listed, never all at once:
#: importing every command's module cost `evidence ingest` about half a second before it read the device).
COMMANDS = {
    "ingest": "evidence.cli.ingest", "profiles": "evidence.cli.ingest", "worker": "evidence.cli.ingest",
    "archive-pending": "evidence.cli.ingest:archive_pending", "derive-pending": "evidence.cli.ingest:derive_pending",
    "samples": "evidence.cli.ingest", "demo": "evidence.cli.ingest",
    "search": "evidence.cli.recordings", "show": "evidence.cli.recordings", "cat": "evidence.cli.recordings",
    "tag": "evidence.cli.recordings", "manifest": "evidence.cli.recordings",
    "station": "evidence.cli.station", "case": "evidence.cli.cases", "retention": "evidence.cli.retention",
    "verify": "evidence.cli.verify", "custody": "evidence.cli.verify", "export": "evidence.cli.verify",
    "user": "evidence.cli.users", "serve": "evidence.cli.serve", "integrity": "evidence.cli.integrity",
    "keys": "evidence.cli.keys", "class": "evidence.cli.classes:class_", "redact": "evidence.cli.redact",
    "device": "evidence.cli.devices",
    "release": "evidence.cli.releases:release", "redact-job": "evidence.cli.redact:redact_job",
}
#: Libraries that log every connection or request at INFO/DEBUG: WARNING unless -vv asks for their detail.
NOISY_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "pika", "alembic", "watchdog", "asyncio")
#: Commands that run as services: their INFO lines (one per archived recording, workers starting) are the log.
SERVICE_COMMANDS = frozenset({"serve", "worker", "derive-pending"})


class _IsoFormatter(logging.Formatter):
    """`2026-11-30T14:03:07.412+08:00 INFO ingest.queue.actors: …`: local time with its offset, to the millisecond."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        from datetime import datetime

        return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


def configure_logging(verbose: int, *, service: bool) -> None:
    """One timestamped stderr handler on the root logger: WARNING for commands, INFO for services (each -v one
    level more). Noisy libraries stay at WARNING until -vv. Calling it again replaces the handler it installed
    (never a second copy of every line); a root logger someone else configured (a test harness) is left alone.
    """
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "evidence_cli", False)]
    if len(ours) < len(root.handlers):
        return
    for handler in ours:
        root.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.evidence_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(_IsoFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    level = max(logging.DEBUG, (logging.INFO if service else logging.WARNING) - 10 * verbose)
    root.setLevel(level)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose >= 2 else max(level, logging.WARNING))


class _LazyGroup(click.Group):
    """A group whose commands are imported when asked for (click's documented lazy-loading pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = COMMANDS.get(cmd_name)
        if where is None:
            return None
        module, _, attribute = where.partition(":")
        command = getattr(importlib.import_module(module), attribute or cmd_name)
        assert isinstance(command, click.Command) and command.name == cmd_name, (cmd_name, command)
        return command


@click.group(cls=_LazyGroup)
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv: also the libraries').")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """Audiovisual evidence ingest: dock, hash, stamp, catalogue, keep unaltered."""
    configure_logging(verbose, service=ctx.invoked_subcommand in SERVICE_COMMANDS)


if __name__ == "__main__":  # pragma: no cover
    main()
