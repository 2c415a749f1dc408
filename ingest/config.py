"""Settings of a station / archive: the only module that reads the environment.

Values come from EVIDENCE_* variables, then from an optional TOML file
(EVIDENCE_CONFIG, else $EVIDENCE_HOME/evidence.toml), then defaults. A bad
value fails at start with the key, the value and the reason.
"""
from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from catalog import DEFAULT_CASE_PATTERN, DEFAULT_CASE_TYPES, CaseType, PolicyInvalid, RetentionPolicy, load_case_types
from ingest.errors import ConfigInvalid
from storage import RetentionRefused, validate_routine_months

__all__ = ["SETTINGS_HELP", "S3Settings", "Secret", "Settings"]

#: Every setting: env name -> (TOML key, default shown in the README, meaning).
SETTINGS_HELP: dict[str, tuple[str, str, str]] = {
    "EVIDENCE_HOME": ("home", "./evidence-data", "folder for the embedded catalog, WORM store and staging"),
    "EVIDENCE_CONFIG": ("-", "$EVIDENCE_HOME/evidence.toml", "optional TOML file with the keys below"),
    "EVIDENCE_DATABASE_URL": ("database_url", "sqlite:///$EVIDENCE_HOME/catalog.db", "catalog database URL"),
    "EVIDENCE_STORE_URL": ("store_url", "file://$EVIDENCE_HOME/worm", "WORM store: file://PATH or s3://BUCKET[/PREFIX]"),
    "EVIDENCE_S3_ENDPOINT": ("s3_endpoint", "(AWS)", "S3 endpoint URL (MinIO, Ceph RGW, SeaweedFS)"),
    "EVIDENCE_S3_ACCESS_KEY": ("s3_access_key", "(boto3 default chain)", "S3 access key"),
    "EVIDENCE_S3_SECRET_KEY": ("s3_secret_key", "(boto3 default chain)", "S3 secret key (never printed)"),
    "EVIDENCE_S3_REGION": ("s3_region", "us-east-1", "S3 region"),
    "EVIDENCE_S3_MULTIPART_THRESHOLD_MB": ("s3_multipart_threshold_mb", "64", "files this large use multipart"),
    "EVIDENCE_S3_PART_SIZE_MB": ("s3_part_size_mb", "16", "multipart part size (at least 5)"),
    "EVIDENCE_S3_CONCURRENCY": ("s3_concurrency", "4", "parts uploaded at once (memory = parts × part size)"),
    "EVIDENCE_STAGING_DIR": ("staging_dir", "$EVIDENCE_HOME/staging", "station staging area"),
    "EVIDENCE_STATION": ("station", "station-1", "this station's code"),
    "EVIDENCE_STATION_NAME": ("station_name", "(the code)", "this station's display name"),
    "EVIDENCE_STATION_KEY": ("station_key", "$EVIDENCE_HOME/keys/<station>.ed25519.pem",
                             "Ed25519 key that signs manifests (created at first use)"),
    "EVIDENCE_STATION_PLACE": ("station_place", "(none)", "'LAT,LON' used when a file has no GPS"),
    "EVIDENCE_STATION_TZ": ("station_tz", "Asia/Shanghai", "zone for device clocks a profile leaves open"),
    "EVIDENCE_ROUTINE_RETENTION_MONTHS": ("routine_retention_months", "6", "routine retention; < 6 refused"),
    "EVIDENCE_CASE_PATTERN": ("case_pattern", "(see README)", "regular expression a case number must match"),
    "EVIDENCE_CASE_TYPES": ("case_types", "(built-in table)",
                            "TOML file of case types and their retention (years or permanent)"),
    "EVIDENCE_DISPOSAL_APPROVAL": ("disposal_approval", "required",
                                   "'required': a second, named person approves each disposal batch; 'none'"),
    "EVIDENCE_PROFILES_DIR": ("profiles_dir", "(none)", "extra folder of device-profile YAML files"),
    "EVIDENCE_BROKER_URL": ("broker_url", "(in-process)", "queue broker: redis://… or amqp://…"),
    "EVIDENCE_QUEUE_NAMESPACE": ("queue_namespace", "evidence", "prefix of queue names (and Redis keys)"),
    "EVIDENCE_MOUNT_ROOTS": ("mount_roots", "/media:/run/media/*",
                             "where docked recorders are mounted (':'-separated globs)"),
    "EVIDENCE_STATION_WORKERS": ("station_workers", "4", "devices ingested at once by `station watch`"),
    "EVIDENCE_MOUNT_STABLE_S": ("mount_stable_s", "1.0", "a new volume must be unchanged this long before reading"),
    "EVIDENCE_RESCAN_S": ("rescan_s", "5", "periodic rescan of the mount roots (safety net for inotify)"),
    "EVIDENCE_CLEAR_DEVICES": ("clear_devices", "profile",
                               "'profile': clear verified files where the profile allows; 'never'"),
    "EVIDENCE_STATUS_ADDR": ("status_addr", "127.0.0.1:8765", "station HTTP endpoint HOST:PORT ('' turns it off)"),
    "EVIDENCE_DISK_FULL_WAIT_S": ("disk_full_wait_s", "600", "how long ingest pauses for staging space to return"),
    "EVIDENCE_ANCHOR_INTERVAL_S": ("anchor_interval_s", "3600",
                                   "`station watch` and `worker --schedule` write the custody chain head to WORM "
                                   "storage this often (also after every dock session, disposal and verify; "
                                   "0: only then)"),
    "EVIDENCE_FIXITY_INTERVAL_S": ("fixity_interval_s", "3600", "`worker --schedule` queues a fixity check this often"),
    "EVIDENCE_FIXITY_SAMPLE": ("fixity_sample", "100", "recordings re-hashed per fixity check (least recent first)"),
    "EVIDENCE_WEB_ADDR": ("web_addr", "127.0.0.1:8000", "`evidence serve` listens here (HOST:PORT)"),
    "EVIDENCE_WEB_SECURE_COOKIES": ("web_secure_cookies", "false",
                                    "'true' behind a TLS proxy: session cookies are sent over HTTPS only"),
    "EVIDENCE_WEB_TRUSTED_PROXIES": ("web_trusted_proxies", "127.0.0.1",
                                     "addresses or networks (comma-separated, e.g. 172.30.0.1 or 10.0.0.0/8) whose "
                                     "X-Forwarded-For / X-Forwarded-Proto `evidence serve` believes: your reverse "
                                     "proxy. Sign-in backoff and the custody log use the client address they give; "
                                     "empty: believe none"),
    "EVIDENCE_ACCESS_REASON": ("access_reason", "download",
                               "first step that needs a stated reason (调阅事由) in the browser: view, play, download"),
    "EVIDENCE_PROBE_WORKERS": ("probe_workers", "2", "parallel ffprobe/EXIF readers"),
    "EVIDENCE_PROBE_TIMEOUT_S": ("probe_timeout_s", "120", "ffprobe time limit per file"),
    "EVIDENCE_TIME_FLOOR": ("time_floor", "2005-01-01",
                            "capture times before this date (UTC) are a wrong device clock: flagged time_implausible"),
    "EVIDENCE_STAGED_ALARM_S": ("staged_alarm_s", "3600",
                                "a recording still `staged` (not in WORM storage) this long raises the staged alarm"),
    "EVIDENCE_OUTBOX_RELAY_S": ("outbox_relay_s", "2",
                                "how often `station watch` and `worker` hand waiting outbox messages to the broker "
                                "(messages are written to the catalogue's outbox with their recording and survive a "
                                "broker outage)"),
    "EVIDENCE_RECONCILE_AFTER_S": ("reconcile_after_s", "900",
                                   "a recording still `staged` this long, with no message sent for it as long and no "
                                   "worker holding it, is queued again by the reconciler (in every `worker`)"),
    "EVIDENCE_ARCHIVE_LEASE_S": ("archive_lease_s", "60",
                                 "a worker archiving a recording holds it this long, renewed every third of it; "
                                 "an unrenewed hold (a killed worker) frees the recording for another worker"),
    "EVIDENCE_REDIS_HEARTBEAT_S": ("redis_heartbeat_s", "30",
                                   "Redis broker: a worker silent this long is dead and its unacknowledged messages "
                                   "are requeued (dramatiq heartbeat_timeout)"),
    "EVIDENCE_REDIS_MAINTENANCE_CHANCE": ("redis_maintenance_chance", "50000",
                                          "Redis broker: of every million broker commands, how many run the "
                                          "maintenance that requeues dead workers' messages (dramatiq's default "
                                          "1000 left them stranded for minutes)"),
    "EVIDENCE_STAGING_SWEEP_S": ("staging_sweep_s", "300",
                                 "`station watch` removes staged copies nothing needs (archived and in the store, "
                                 "or disposed) at start and this often"),
    "EVIDENCE_STATUS_HEARTBEAT_S": ("status_heartbeat_s", "5",
                                    "`station watch` rewrites its status at least this often; a status older than "
                                    "three beats reads as not running"),
    "EVIDENCE_METRICS_TOKEN": ("metrics_token", "",
                               "bearer token that opens /metrics and the API docs without signing in (Prometheus); "
                               "empty: only signed-in users"),
}


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


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    prefix: str
    endpoint: str | None
    access_key: str | None
    secret_key: Secret | None
    region: str
    multipart_threshold_bytes: int
    part_size_bytes: int
    concurrency: int


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    store_url: str
    staging_dir: Path
    station: str
    station_name: str
    station_key_path: Path
    station_place: tuple[float, float] | None
    station_tz: str
    routine_retention_months: int
    case_pattern: str
    profiles_dir: Path | None
    probe_workers: int
    probe_timeout_s: float
    s3: S3Settings | None = None
    broker_url: str = ""
    queue_namespace: str = "evidence"
    mount_roots: tuple[str, ...] = ("/media", "/run/media/*")
    station_workers: int = 4
    mount_stable_s: float = 1.0
    rescan_s: float = 5.0
    clear_devices: str = "profile"
    disk_full_wait_s: float = 600.0
    status_addr: tuple[str, int] | None = ("127.0.0.1", 8765)
    case_types: Mapping[str, CaseType] = field(default_factory=lambda: dict(DEFAULT_CASE_TYPES))
    disposal_approval: str = "required"
    anchor_interval_s: float = 3600.0
    fixity_interval_s: float = 3600.0
    fixity_sample: int = 100
    web_addr: tuple[str, int] = ("127.0.0.1", 8000)
    web_secure_cookies: bool = False
    web_trusted_proxies: tuple[str, ...] = ("127.0.0.1",)
    access_reason: str = "download"
    time_floor: datetime = datetime(2005, 1, 1, tzinfo=UTC)
    staged_alarm_s: float = 3600.0
    metrics_token: Secret = field(default_factory=lambda: Secret(""))
    outbox_relay_s: float = 2.0
    reconcile_after_s: float = 900.0
    archive_lease_s: float = 60.0
    redis_heartbeat_s: float = 30.0
    redis_maintenance_chance: int = 50_000
    status_heartbeat_s: float = 5.0
    staging_sweep_s: float = 300.0

    @property
    def retention_policy(self) -> RetentionPolicy:
        """Routine period, case types and the agency's calendar zone (EVIDENCE_STATION_TZ)."""
        return RetentionPolicy(routine_months=self.routine_retention_months, case_types=self.case_types,
                               zone=self.station_tz)

    @property
    def locks_dir(self) -> Path:
        """One lock file per device a run is ingesting (ingest.journal.hold)."""
        return self.home / "locks"

    @property
    def status_path(self) -> Path:
        return self.home / "station-status.json"

    @property
    def store_path(self) -> Path:
        return Path(self.store_url.removeprefix("file://"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        home = Path(environ.get("EVIDENCE_HOME", "./evidence-data")).expanduser().absolute()
        config_path = environ.get("EVIDENCE_CONFIG")
        toml: dict[str, Any] = {}
        path = Path(config_path) if config_path else home / "evidence.toml"
        if config_path or path.exists():
            try:
                toml = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ConfigInvalid("EVIDENCE_CONFIG", str(path), f"Cannot read TOML: {exc}") from exc
            known = {toml_key for toml_key, _, _ in SETTINGS_HELP.values()}
            unknown = sorted(set(toml) - known)
            if unknown:
                raise ConfigInvalid("EVIDENCE_CONFIG", str(path), f"Unknown keys: {', '.join(unknown)}.")

        def get(key: str, default: str) -> str:
            if key in environ:
                return environ[key]
            toml_key = SETTINGS_HELP[key][0]
            return str(toml[toml_key]) if toml_key in toml else default

        def integer(key: str, default: str, minimum: int) -> int:
            raw = get(key, default)
            try:
                value = int(raw)
            except ValueError:
                raise ConfigInvalid(key, raw, "Not a valid integer.") from None
            if value < minimum:
                raise ConfigInvalid(key, raw, f"Must be at least {minimum}.")
            return value

        months = integer("EVIDENCE_ROUTINE_RETENTION_MONTHS", "6", 1)
        try:
            validate_routine_months(months)
        except RetentionRefused as exc:
            raise ConfigInvalid("EVIDENCE_ROUTINE_RETENTION_MONTHS", str(months), f"{exc}.") from None

        raw_timeout = get("EVIDENCE_PROBE_TIMEOUT_S", "120")
        try:
            timeout = float(raw_timeout)
        except ValueError:
            raise ConfigInvalid("EVIDENCE_PROBE_TIMEOUT_S", raw_timeout, "Not a number of seconds.") from None
        if timeout <= 0:
            raise ConfigInvalid("EVIDENCE_PROBE_TIMEOUT_S", raw_timeout, "Must be above 0.")

        zone = get("EVIDENCE_STATION_TZ", "Asia/Shanghai")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigInvalid("EVIDENCE_STATION_TZ", zone, "Not a known IANA time zone.") from None

        place = None
        raw_place = get("EVIDENCE_STATION_PLACE", "")
        if raw_place:
            place = _parse_place("EVIDENCE_STATION_PLACE", raw_place)

        pattern = get("EVIDENCE_CASE_PATTERN", DEFAULT_CASE_PATTERN)
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigInvalid("EVIDENCE_CASE_PATTERN", pattern, f"Not a regular expression: {exc}.") from None

        station = get("EVIDENCE_STATION", "station-1")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", station):
            raise ConfigInvalid("EVIDENCE_STATION", station, "Use 1-64 letters, digits, '_', '.', '-'.")

        store_url = get("EVIDENCE_STORE_URL", f"file://{home / 'worm'}")
        s3 = None
        if store_url.startswith("s3://"):
            bucket, _, prefix = store_url.removeprefix("s3://").partition("/")
            if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
                raise ConfigInvalid("EVIDENCE_STORE_URL", store_url, "Not a valid S3 bucket name.")
            part_mb = integer("EVIDENCE_S3_PART_SIZE_MB", "16", 5)
            secret = get("EVIDENCE_S3_SECRET_KEY", "")
            s3 = S3Settings(
                bucket=bucket, prefix=prefix.strip("/") + "/" if prefix.strip("/") else "",
                endpoint=get("EVIDENCE_S3_ENDPOINT", "") or None,
                access_key=get("EVIDENCE_S3_ACCESS_KEY", "") or None,
                secret_key=Secret(secret) if secret else None,
                region=get("EVIDENCE_S3_REGION", "us-east-1"),
                multipart_threshold_bytes=integer("EVIDENCE_S3_MULTIPART_THRESHOLD_MB", "64", 5) * 2**20,
                part_size_bytes=part_mb * 2**20, concurrency=integer("EVIDENCE_S3_CONCURRENCY", "4", 1))
        elif not store_url.startswith("file://"):
            raise ConfigInvalid("EVIDENCE_STORE_URL", store_url, "Use file://PATH or s3://BUCKET[/PREFIX].")
        profiles_dir = get("EVIDENCE_PROFILES_DIR", "")
        if profiles_dir and not Path(profiles_dir).is_dir():
            raise ConfigInvalid("EVIDENCE_PROFILES_DIR", profiles_dir, "Not a folder.")

        case_types_path = get("EVIDENCE_CASE_TYPES", "")
        case_types = dict(DEFAULT_CASE_TYPES)
        if case_types_path:
            try:
                case_types = load_case_types(Path(case_types_path))
            except PolicyInvalid as exc:
                raise ConfigInvalid("EVIDENCE_CASE_TYPES", case_types_path, f"{exc}.") from None

        return cls(
            home=home,
            database_url=get("EVIDENCE_DATABASE_URL", f"sqlite:///{home / 'catalog.db'}"),
            store_url=store_url,
            staging_dir=Path(get("EVIDENCE_STAGING_DIR", str(home / "staging"))).absolute(),
            station=station,
            station_name=get("EVIDENCE_STATION_NAME", station),
            station_key_path=Path(get("EVIDENCE_STATION_KEY", str(home / "keys" / f"{station}.ed25519.pem"))),
            station_place=place,
            station_tz=zone,
            routine_retention_months=months,
            case_pattern=pattern,
            profiles_dir=Path(profiles_dir) if profiles_dir else None,
            probe_workers=integer("EVIDENCE_PROBE_WORKERS", "2", 1),
            probe_timeout_s=timeout,
            s3=s3,
            broker_url=_broker_url(get("EVIDENCE_BROKER_URL", "")),
            queue_namespace=_namespace(get("EVIDENCE_QUEUE_NAMESPACE", "evidence")),
            mount_roots=tuple(r for r in get("EVIDENCE_MOUNT_ROOTS", "/media:/run/media/*").split(":") if r),
            station_workers=integer("EVIDENCE_STATION_WORKERS", "4", 1),
            mount_stable_s=_seconds("EVIDENCE_MOUNT_STABLE_S", get("EVIDENCE_MOUNT_STABLE_S", "1.0")),
            rescan_s=_seconds("EVIDENCE_RESCAN_S", get("EVIDENCE_RESCAN_S", "5")),
            status_addr=_address("EVIDENCE_STATUS_ADDR", get("EVIDENCE_STATUS_ADDR", "127.0.0.1:8765")),
            disk_full_wait_s=_seconds("EVIDENCE_DISK_FULL_WAIT_S", get("EVIDENCE_DISK_FULL_WAIT_S", "600")),
            clear_devices=_choice("EVIDENCE_CLEAR_DEVICES", get("EVIDENCE_CLEAR_DEVICES", "profile"),
                                  ("profile", "never")),
            case_types=case_types,
            anchor_interval_s=_seconds("EVIDENCE_ANCHOR_INTERVAL_S", get("EVIDENCE_ANCHOR_INTERVAL_S", "3600")),
            fixity_interval_s=_seconds("EVIDENCE_FIXITY_INTERVAL_S", get("EVIDENCE_FIXITY_INTERVAL_S", "3600")),
            fixity_sample=integer("EVIDENCE_FIXITY_SAMPLE", "100", 1),
            web_addr=_address("EVIDENCE_WEB_ADDR", get("EVIDENCE_WEB_ADDR", "127.0.0.1:8000")) or ("127.0.0.1", 8000),
            web_secure_cookies=_choice("EVIDENCE_WEB_SECURE_COOKIES", get("EVIDENCE_WEB_SECURE_COOKIES", "false"),
                                       ("true", "false")) == "true",
            web_trusted_proxies=_proxies("EVIDENCE_WEB_TRUSTED_PROXIES",
                                         get("EVIDENCE_WEB_TRUSTED_PROXIES", "127.0.0.1")),
            access_reason=_choice("EVIDENCE_ACCESS_REASON", get("EVIDENCE_ACCESS_REASON", "download"),
                                  ("view", "play", "download")),
            disposal_approval=_choice("EVIDENCE_DISPOSAL_APPROVAL", get("EVIDENCE_DISPOSAL_APPROVAL", "required"),
                                      ("required", "none")),
            time_floor=_date("EVIDENCE_TIME_FLOOR", get("EVIDENCE_TIME_FLOOR", "2005-01-01")),
            staged_alarm_s=_seconds("EVIDENCE_STAGED_ALARM_S", get("EVIDENCE_STAGED_ALARM_S", "3600")),
            metrics_token=Secret(get("EVIDENCE_METRICS_TOKEN", "").strip()),
            outbox_relay_s=_positive("EVIDENCE_OUTBOX_RELAY_S", get("EVIDENCE_OUTBOX_RELAY_S", "2")),
            reconcile_after_s=_positive("EVIDENCE_RECONCILE_AFTER_S", get("EVIDENCE_RECONCILE_AFTER_S", "900")),
            archive_lease_s=_positive("EVIDENCE_ARCHIVE_LEASE_S", get("EVIDENCE_ARCHIVE_LEASE_S", "60")),
            redis_heartbeat_s=_positive("EVIDENCE_REDIS_HEARTBEAT_S", get("EVIDENCE_REDIS_HEARTBEAT_S", "30")),
            redis_maintenance_chance=integer("EVIDENCE_REDIS_MAINTENANCE_CHANCE", "50000", 1),
            staging_sweep_s=_positive("EVIDENCE_STAGING_SWEEP_S", get("EVIDENCE_STAGING_SWEEP_S", "300")),
            status_heartbeat_s=_positive("EVIDENCE_STATUS_HEARTBEAT_S", get("EVIDENCE_STATUS_HEARTBEAT_S", "5")),
        )


def _proxies(key: str, raw: str) -> tuple[str, ...]:
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


def _address(key: str, raw: str) -> tuple[str, int] | None:
    if not raw:
        return None
    host, _, port = raw.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigInvalid(key, raw, "Use HOST:PORT (port 0 picks a free one), or leave it empty to turn it off.")
    return host, int(port)


def _seconds(key: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigInvalid(key, raw, "Not a number of seconds.") from None
    if value < 0:
        raise ConfigInvalid(key, raw, "Must not be negative.")
    return value


def _positive(key: str, raw: str) -> float:
    value = _seconds(key, raw)
    if value == 0:
        raise ConfigInvalid(key, raw, "Must be more than 0 seconds.")
    return value


def _date(key: str, raw: str) -> datetime:
    try:
        day = date.fromisoformat(raw.strip())
    except ValueError:
        raise ConfigInvalid(key, raw, "Not a date (YYYY-MM-DD).") from None
    if not date(1970, 1, 1) <= day <= date(2100, 1, 1):
        raise ConfigInvalid(key, raw, "Must lie between 1970-01-01 and 2100-01-01.")
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _choice(key: str, raw: str, allowed: tuple[str, ...]) -> str:
    if raw not in allowed:
        raise ConfigInvalid(key, raw, f"Use one of: {', '.join(allowed)}.")
    return raw


def _broker_url(raw: str) -> str:
    if raw and not raw.startswith(("redis://", "rediss://", "amqp://", "amqps://")):
        raise ConfigInvalid("EVIDENCE_BROKER_URL", raw, "Use redis://HOST:PORT/DB or amqp://USER:PASS@HOST:PORT/VHOST.")
    return raw


def _namespace(raw: str) -> str:
    if not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9_-]{0,40}", raw):
        raise ConfigInvalid("EVIDENCE_QUEUE_NAMESPACE", raw, "Use up to 41 letters, digits, '_' or '-'.")
    return raw


def _parse_place(key: str, raw: str) -> tuple[float, float]:
    try:
        lat_text, lon_text = raw.split(",")
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        raise ConfigInvalid(key, raw, "Expected 'LAT,LON' in decimal degrees.") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ConfigInvalid(key, raw, "Latitude must be within ±90 and longitude within ±180.")
    return lat, lon
