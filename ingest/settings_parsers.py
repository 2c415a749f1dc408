"""Turning the text of one EVIDENCE_* variable into the value a setting holds.

Every parser takes the variable's name and its raw text and returns the value, or raises ConfigInvalid
naming the variable, the text and the reason (`Config 'EVIDENCE_RESCAN_S' has value 'ten'. Not a number
of seconds.`). The table in ingest.settings_table says which parser reads which variable.
"""
from __future__ import annotations

import ipaddress
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from catalog import DEFAULT_CASE_TYPES, CaseType, PolicyInvalid, load_case_types
from catalog.checklist_rules import DEFAULT_CHECKLIST, MAX_TOLERANCE_S, Checklist, ChecklistInvalid, load_checklist
from ingest.errors import ConfigInvalid
from storage import RetentionRefused, validate_routine_months

__all__ = [
    "WEB_ADDR",
    "Parser",
    "Secret",
    "absolute_path",
    "address",
    "boolean",
    "broker_url",
    "case_pattern",
    "case_types",
    "choice",
    "date_floor",
    "home_path",
    "integer",
    "megabytes",
    "mount_roots",
    "namespace",
    "optional_secret",
    "optional_text",
    "path",
    "place",
    "positive_seconds",
    "probe_timeout",
    "profiles_dir",
    "proxies",
    "routine_months",
    "s3_bucket_and_prefix",
    "seconds",
    "station_code",
    "store_url",
    "text",
    "token",
    "web_address",
    "zone",
]

#: (variable name, raw text) -> value; raises ConfigInvalid.
Parser = Callable[[str, str], Any]

#: Where `evidence serve` listens when EVIDENCE_WEB_ADDR is empty (it cannot be turned off).
WEB_ADDR = "127.0.0.1:8000"


class Secret:
    """A credential whose repr never shows it (as starlette.datastructures.Secret)."""

    def __init__(self, value: str) -> None:
        self._value = value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return self._value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def text(key: str, raw: str) -> str:
    return raw


def optional_text(key: str, raw: str) -> str | None:
    return raw or None


def path(key: str, raw: str) -> Path:
    return Path(raw)


def absolute_path(key: str, raw: str) -> Path:
    return Path(raw).absolute()


def home_path(key: str, raw: str) -> Path:
    return Path(raw).expanduser().absolute()


def optional_secret(key: str, raw: str) -> Secret | None:
    return Secret(raw) if raw else None


def token(key: str, raw: str) -> Secret:
    return Secret(raw.strip())


def integer(minimum: int) -> Parser:
    """A whole number of at least *minimum*."""
    def parse(key: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigInvalid(key, raw, "Not a valid integer.") from None
        if value < minimum:
            raise ConfigInvalid(key, raw, f"Must be at least {minimum}.")
        return value
    return parse


def megabytes(minimum: int) -> Parser:
    """A whole number of MiB (at least *minimum*), returned in bytes."""
    whole = integer(minimum)

    def parse(key: str, raw: str) -> int:
        return int(whole(key, raw)) * 2**20
    return parse


def choice(*allowed: str) -> Parser:
    """One of the words *allowed*."""
    def parse(key: str, raw: str) -> str:
        if raw not in allowed:
            raise ConfigInvalid(key, raw, f"Use one of: {', '.join(allowed)}.")
        return raw
    return parse


def boolean(key: str, raw: str) -> bool:
    return bool(choice("true", "false")(key, raw) == "true")


def routine_months(key: str, raw: str) -> int:
    months = int(integer(1)(key, raw))
    try:
        validate_routine_months(months)
    except RetentionRefused as exc:
        raise ConfigInvalid(key, str(months), f"{exc}.") from None
    return months


#: The longest time any setting may give (every timer and age stays a date the calendar can hold).
LONGEST_S = 100 * 365 * 86400.0


def _number_of_seconds(key: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigInvalid(key, raw, "Not a number of seconds.") from None
    if not math.isfinite(value):
        raise ConfigInvalid(key, raw, "Not a number of seconds.")
    if value > LONGEST_S:
        raise ConfigInvalid(key, raw, f"Too long: at most {LONGEST_S:.0f} seconds (100 years).")
    return value


def seconds(key: str, raw: str) -> float:
    value = _number_of_seconds(key, raw)
    if value < 0:
        raise ConfigInvalid(key, raw, "Must not be negative.")
    return value


def positive_seconds(key: str, raw: str) -> float:
    value = seconds(key, raw)
    if value == 0:
        raise ConfigInvalid(key, raw, "Must be more than 0 seconds.")
    return value


def probe_timeout(key: str, raw: str) -> float:
    """Seconds above 0 (its own wording: 'Must be above 0.' for a negative value too)."""
    value = _number_of_seconds(key, raw)
    if value <= 0:
        raise ConfigInvalid(key, raw, "Must be above 0.")
    return value


def zone(key: str, raw: str) -> str:
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigInvalid(key, raw, "Not a known IANA time zone.") from None
    return raw


def place(key: str, raw: str) -> tuple[float, float] | None:
    """'LAT,LON' in decimal degrees; empty: none."""
    if not raw:
        return None
    try:
        lat_text, lon_text = raw.split(",")
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        raise ConfigInvalid(key, raw, "Expected 'LAT,LON' in decimal degrees.") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ConfigInvalid(key, raw, "Latitude must be within ±90 and longitude within ±180.")
    return lat, lon


#: A tile address: http(s) or a path on this server, with {z}, {x} and {y} (and optionally {s}, {r}) and nothing a
#: page's policy header or a script's string could be broken by.
_TILE_URL = re.compile(r"(?:https?://(?:\{s\}\.)?[A-Za-z0-9.-]+(?::\d{1,5})?/|/(?!/))[A-Za-z0-9._~/{}@&=+!$()*?%-]*")


def tile_url(key: str, raw: str) -> str:
    """A map tile address (Leaflet's template, e.g. `https://tiles.example.gov.cn/{z}/{x}/{y}.png` or
    `/tiles/{z}/{x}/{y}.png`); empty: no tiles (a plain coordinate grid)."""
    if not raw:
        return ""
    if not _TILE_URL.fullmatch(raw):
        odd = sorted({c for c in raw if not (c.isascii() and (c.isalnum() or c in "._~/{}@&=+!$()*?%-:"))})
        raise ConfigInvalid(key, raw, "Expected an http(s) URL or a path starting with '/', e.g. "
                                      "'https://tiles.example.gov.cn/{z}/{x}/{y}.png'"
                                      + (f"; it holds {''.join(odd)!r}, which a tile address here may not (a "
                                         "non-ASCII host: put it in its punycode form)" if odd else "") + ".")
    missing = [p for p in ("{z}", "{x}", "{y}") if p not in raw]
    if missing:
        raise ConfigInvalid(key, raw, f"A tile address needs {', '.join(missing)} (Leaflet's placeholders).")
    unknown = sorted(set(re.findall(r"\{[^}]*\}", raw)) - {"{z}", "{x}", "{y}", "{s}", "{r}"})
    if unknown or raw.count("{") != raw.count("}"):
        raise ConfigInvalid(key, raw, f"Only {{z}}, {{x}}, {{y}}, {{s}} and {{r}} may stand in braces, not "
                                      f"{', '.join(unknown) or 'an unclosed brace'}.")
    # what a browser asks for, with the placeholders filled in as Leaflet fills them ({r} may be empty)
    sample = raw.replace("{s}", "a").replace("{r}", "").replace("{z}", "1").replace("{x}", "2").replace("{y}", "3")
    if raw.startswith("/"):
        if sample.startswith("//"):
            raise ConfigInvalid(key, raw, "A path on this server cannot begin with '//' once {r} is empty: that "
                                          "is another server's address.")
        return raw
    try:
        port = urlsplit(sample).port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise ConfigInvalid(key, raw, "The port must be a number from 1 to 65535.")
    host = urlsplit(sample).hostname or ""
    if "{s}." in raw and host.count(".") < 2:
        raise ConfigInvalid(key, raw, f"With {{s}}, the rest of the host ({host[2:]!r}) must be a server's own "
                                      "domain of two labels or more: the policy allows every name under it.")
    return raw


def case_pattern(key: str, raw: str) -> str:
    try:
        re.compile(raw)
    except re.error as exc:
        raise ConfigInvalid(key, raw, f"Not a regular expression: {exc}.") from None
    return raw


def station_code(key: str, raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", raw):
        raise ConfigInvalid(key, raw, "Use 1-64 letters, digits, '_', '.', '-'.")
    return raw


def s3_bucket_and_prefix(url: str) -> tuple[str, str]:
    """s3://BUCKET[/PREFIX] -> (BUCKET, 'PREFIX/' or '')."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/") + "/" if prefix.strip("/") else ""


def store_url(key: str, raw: str) -> str:
    if raw.startswith("s3://"):
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", s3_bucket_and_prefix(raw)[0]):
            raise ConfigInvalid(key, raw, "Not a valid S3 bucket name.")
    elif not raw.startswith("file://"):
        raise ConfigInvalid(key, raw, "Use file://PATH or s3://BUCKET[/PREFIX].")
    return raw


def profiles_dir(key: str, raw: str) -> Path | None:
    if not raw:
        return None
    if not Path(raw).is_dir():
        raise ConfigInvalid(key, raw, "Not a folder.")
    return Path(raw)


def case_types(key: str, raw: str) -> Mapping[str, CaseType]:
    """A TOML file of case types; empty: the built-in table."""
    if not raw:
        return dict(DEFAULT_CASE_TYPES)
    try:
        return load_case_types(Path(raw))
    except PolicyInvalid as exc:
        raise ConfigInvalid(key, raw, f"{exc}.") from None


def sensitivity_names(key: str, raw: str) -> Mapping[str, tuple[str, str]]:
    """A TOML file of the agency's names for the sensitivity classes; empty: the built-in names."""
    from catalog.sensitivity import LABELS, parse_names

    if not raw:
        return dict(LABELS)
    try:
        with Path(raw).open("rb") as fh:
            table = tomllib.load(fh)
    except OSError as exc:
        raise ConfigInvalid(key, raw, f"Cannot read it: {exc.strerror}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigInvalid(key, raw, f"Not TOML: {exc}.") from None
    try:
        return parse_names(table)
    except ValueError as exc:
        raise ConfigInvalid(key, raw, f"{exc}.") from None


def action_checklist(key: str, raw: str) -> Checklist:
    """A YAML or JSON file of the agency's action checklist; empty: the built-in one."""
    if not raw:
        return DEFAULT_CHECKLIST
    try:
        return load_checklist(Path(raw))
    except ChecklistInvalid as exc:
        raise ConfigInvalid(key, raw, f"{exc}.") from None


def action_tolerance(key: str, raw: str) -> float:
    """Seconds from 0 to MAX_TOLERANCE_S."""
    value = seconds(key, raw)
    if value > MAX_TOLERANCE_S:
        raise ConfigInvalid(key, raw, f"Must be at most {MAX_TOLERANCE_S:g} seconds.")
    return value


def broker_url(key: str, raw: str) -> str:
    if raw and not raw.startswith(("redis://", "rediss://", "amqp://", "amqps://")):
        raise ConfigInvalid(key, raw, "Use redis://HOST:PORT/DB or amqp://USER:PASS@HOST:PORT/VHOST.")
    return raw


def namespace(key: str, raw: str) -> str:
    if not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9_-]{0,40}", raw):
        raise ConfigInvalid(key, raw, "Use up to 41 letters, digits, '_' or '-'.")
    return raw


def mount_roots(key: str, raw: str) -> tuple[str, ...]:
    return tuple(root for root in raw.split(":") if root)


def address(key: str, raw: str) -> tuple[str, int] | None:
    """HOST:PORT; empty: turned off (None)."""
    return _host_and_port(key, raw) if raw else None


def web_address(key: str, raw: str) -> tuple[str, int]:
    """HOST:PORT; empty: WEB_ADDR (the web app cannot be turned off)."""
    return _host_and_port(key, raw or WEB_ADDR)


def _host_and_port(key: str, raw: str) -> tuple[str, int]:
    host, _, port = raw.rpartition(":")
    if not host or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ConfigInvalid(key, raw, "Use HOST:PORT (port 0 picks a free one), or leave it empty to turn it off.")
    return host, int(port)


def proxies(key: str, raw: str) -> tuple[str, ...]:
    """Trusted proxy addresses or networks, comma-separated ('*': any, which is only safe when nothing but the
    proxy can reach the app); empty: none."""
    items = tuple(dict.fromkeys(item.strip() for item in raw.split(",") if item.strip()))
    if items == ("*",):
        return items
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)  # an address is a network of one
        except ValueError:
            raise ConfigInvalid(key, raw, f"{item!r} is not an IP address or network. Use comma-separated addresses "
                                          "or networks (e.g. 127.0.0.1,172.30.0.1 or 10.0.0.0/8), '*' for any, "
                                          "or leave it empty to believe no proxy.") from None
    return items


def date_floor(key: str, raw: str) -> datetime:
    """YYYY-MM-DD between 1970 and 2100, as midnight UTC."""
    try:
        day = date.fromisoformat(raw.strip())
    except ValueError:
        raise ConfigInvalid(key, raw, "Not a date (YYYY-MM-DD).") from None
    if not date(1970, 1, 1) <= day <= date(2100, 1, 1):
        raise ConfigInvalid(key, raw, "Must lie between 1970-01-01 and 2100-01-01.")
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
