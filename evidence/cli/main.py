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

import logging

import click

from evidence.cli.cases import case
from evidence.cli.ingest import archive_pending, demo, derive_pending, ingest, profiles, samples, worker
from evidence.cli.integrity import integrity
from evidence.cli.keys import keys
from evidence.cli.recordings import cat, manifest, search, show, tag
from evidence.cli.retention import retention
from evidence.cli.serve import serve
from evidence.cli.station import station
from evidence.cli.users import user
from evidence.cli.verify import custody, export, verify

__all__ = ["configure_logging", "main"]

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


@click.group()
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv: also the libraries').")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """Audiovisual evidence ingest: dock, hash, stamp, catalogue, keep unaltered."""
    configure_logging(verbose, service=ctx.invoked_subcommand in SERVICE_COMMANDS)


for _command in (ingest, search, show, cat, tag, manifest, profiles, worker, archive_pending, derive_pending, station,
                 samples, demo, case, retention, verify, custody, export, user, serve, integrity, keys):
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
