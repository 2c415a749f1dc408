"""Options several `evidence` commands take, declared once so that their name, flag and help cannot drift apart."""
from __future__ import annotations

import click

__all__ = ["by_option", "json_option", "view_reason_option"]

#: `--by`: the caller names who they are; it must be the user bound to their OS account (catalog.users.identify).
by_option = click.option("--by", default=None, help="Assert who you are (must be the user bound to your OS account).")

#: `--json`: the command's result as JSON on stdout instead of text.
json_option = click.option("--json", "as_json", is_flag=True)

#: `--reason` of a look at a recording (catalog.access: EVIDENCE_ACCESS_REASON says when it is required).
view_reason_option = click.option(
    "--reason", help="Why you look (调阅事由); required when EVIDENCE_ACCESS_REASON=view.")
