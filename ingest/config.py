"""Settings of a station / archive: the only module that reads the environment.

Values come from EVIDENCE_* variables, then from an optional TOML file
(EVIDENCE_CONFIG, else $EVIDENCE_HOME/evidence.toml), then defaults. A bad
value fails at start with the key, the value and the reason. Which variables
there are, their defaults, parsers and meanings: ingest.settings_table.
"""
from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from catalog import CaseType, RetentionPolicy
from catalog.checklist_rules import Checklist
from catalog.policy_adoption import PolicyTerms
from ingest.errors import ConfigInvalid
from ingest.settings_parsers import Secret, s3_bucket_and_prefix
from ingest.settings_table import SETTINGS, SETTINGS_BY_NAME, settings_epilog, settings_markdown

__all__ = ["SETTINGS", "S3Settings", "Secret", "Settings", "settings_epilog", "settings_markdown"]

def _default(name: str) -> Any:
    """A dataclass field whose default is the table's default for *name*, parsed."""
    return field(default_factory=SETTINGS_BY_NAME[name].parsed_default)


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    prefix: str
    endpoint: str | None = _default("EVIDENCE_S3_ENDPOINT")
    access_key: str | None = _default("EVIDENCE_S3_ACCESS_KEY")
    secret_key: Secret | None = _default("EVIDENCE_S3_SECRET_KEY")
    region: str = _default("EVIDENCE_S3_REGION")
    multipart_threshold_bytes: int = _default("EVIDENCE_S3_MULTIPART_THRESHOLD_MB")
    part_size_bytes: int = _default("EVIDENCE_S3_PART_SIZE_MB")
    concurrency: int = _default("EVIDENCE_S3_CONCURRENCY")
    readback: str = _default("EVIDENCE_S3_READBACK")


@dataclass(frozen=True)
class Settings:
    # Their defaults are made of EVIDENCE_HOME and EVIDENCE_STATION, so from_env works them out.
    home: Path
    database_url: str
    store_url: str
    staging_dir: Path
    station_name: str
    station_key_path: Path
    export_key_path: Path
    station: str = _default("EVIDENCE_STATION")
    station_place: tuple[float, float] | None = _default("EVIDENCE_STATION_PLACE")
    station_tz: str = _default("EVIDENCE_STATION_TZ")
    report_font: Path = _default("EVIDENCE_REPORT_FONT")
    routine_retention_months: int = _default("EVIDENCE_ROUTINE_RETENTION_MONTHS")
    case_pattern: str = _default("EVIDENCE_CASE_PATTERN")
    profiles_dir: Path | None = _default("EVIDENCE_PROFILES_DIR")
    probe_workers: int = _default("EVIDENCE_PROBE_WORKERS")
    probe_timeout_s: float = _default("EVIDENCE_PROBE_TIMEOUT_S")
    s3: S3Settings | None = None  # set for an s3:// EVIDENCE_STORE_URL
    broker_url: str = _default("EVIDENCE_BROKER_URL")
    queue_namespace: str = _default("EVIDENCE_QUEUE_NAMESPACE")
    mount_roots: tuple[str, ...] = _default("EVIDENCE_MOUNT_ROOTS")
    station_workers: int = _default("EVIDENCE_STATION_WORKERS")
    mount_stable_s: float = _default("EVIDENCE_MOUNT_STABLE_S")
    rescan_s: float = _default("EVIDENCE_RESCAN_S")
    clear_devices: str = _default("EVIDENCE_CLEAR_DEVICES")
    disk_full_wait_s: float = _default("EVIDENCE_DISK_FULL_WAIT_S")
    status_addr: tuple[str, int] | None = _default("EVIDENCE_STATUS_ADDR")
    case_types: Mapping[str, CaseType] = _default("EVIDENCE_CASE_TYPES")
    disposal_approval: str = _default("EVIDENCE_DISPOSAL_APPROVAL")
    anchor_interval_s: float = _default("EVIDENCE_ANCHOR_INTERVAL_S")
    tsa_url: str = _default("EVIDENCE_TSA_URL")
    tsa_timeout_s: float = _default("EVIDENCE_TSA_TIMEOUT_S")
    tsa_ca: str = _default("EVIDENCE_TSA_CA")
    fixity_interval_s: float = _default("EVIDENCE_FIXITY_INTERVAL_S")
    fixity_sample: int = _default("EVIDENCE_FIXITY_SAMPLE")
    web_addr: tuple[str, int] = _default("EVIDENCE_WEB_ADDR")
    web_secure_cookies: bool = _default("EVIDENCE_WEB_SECURE_COOKIES")
    web_trusted_proxies: tuple[str, ...] = _default("EVIDENCE_WEB_TRUSTED_PROXIES")
    access_reason: str = _default("EVIDENCE_ACCESS_REASON")
    time_floor: datetime = _default("EVIDENCE_TIME_FLOOR")
    staged_alarm_s: float = _default("EVIDENCE_STAGED_ALARM_S")
    partial_alarm_s: float = _default("EVIDENCE_PARTIAL_ALARM_S")
    device_silent_days: int = _default("EVIDENCE_DEVICE_SILENT_DAYS")
    clock_drift_s: float = _default("EVIDENCE_CLOCK_DRIFT_S")
    clock_set: bool = _default("EVIDENCE_CLOCK_SET")
    map_tiles: str = _default("EVIDENCE_MAP_TILES")
    map_attribution: str = _default("EVIDENCE_MAP_ATTRIBUTION")
    metrics_token: Secret = _default("EVIDENCE_METRICS_TOKEN")
    outbox_relay_s: float = _default("EVIDENCE_OUTBOX_RELAY_S")
    reconcile_after_s: float = _default("EVIDENCE_RECONCILE_AFTER_S")
    archive_lease_s: float = _default("EVIDENCE_ARCHIVE_LEASE_S")
    worker_stop_s: float = _default("EVIDENCE_WORKER_STOP_S")
    sensitivity_names: Mapping[str, tuple[str, str]] = _default("EVIDENCE_SENSITIVITY_NAMES")
    action_checklist: Checklist = _default("EVIDENCE_ACTION_CHECKLIST")
    action_tolerance_s: float = _default("EVIDENCE_ACTION_TOLERANCE_S")
    redis_heartbeat_s: float = _default("EVIDENCE_REDIS_HEARTBEAT_S")
    redis_maintenance_chance: int = _default("EVIDENCE_REDIS_MAINTENANCE_CHANCE")
    status_heartbeat_s: float = _default("EVIDENCE_STATUS_HEARTBEAT_S")
    staging_sweep_s: float = _default("EVIDENCE_STAGING_SWEEP_S")
    store_scratch_age_s: float = _default("EVIDENCE_STORE_SCRATCH_AGE_S")
    derive: str = _default("EVIDENCE_DERIVE")
    #: Each variable's text these settings were parsed from (environment, TOML file or default): what a process
    #: started for this installation is given (`as_environ`). Not compared, never shown.
    raw: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def as_environ(self) -> dict[str, str]:
        """EVIDENCE_* variables that give another process these settings: the texts they were parsed from, with
        home, catalogue, store and station as this object holds them (a test or bench may have replaced them)."""
        return {**self.raw, "EVIDENCE_HOME": str(self.home), "EVIDENCE_DATABASE_URL": self.database_url,
                "EVIDENCE_STORE_URL": self.store_url, "EVIDENCE_STATION": self.station}

    @property
    def retention_policy(self) -> RetentionPolicy:
        """Routine period, case types and the agency's calendar zone (EVIDENCE_STATION_TZ)."""
        return RetentionPolicy(routine_months=self.routine_retention_months, case_types=self.case_types,
                               zone=self.station_tz)

    @property
    def policy_terms(self) -> PolicyTerms:
        """The retention policy with the disposal approval rule: what the catalogue must have adopted
        (catalog.policy_adoption) for this process to decide retention."""
        return PolicyTerms.of(self.retention_policy, disposal_approval=self.disposal_approval)

    @property
    def approval_required(self) -> bool:
        """EVIDENCE_DISPOSAL_APPROVAL=required: a disposal batch is carried out only once a second person approves."""
        return self.disposal_approval == "required"

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
        """Every setting from *environ*, else the TOML file, else the table's default.

        Raises:
          ConfigInvalid: a value (or the TOML file) is wrong; names the variable, its value and why.
        """
        home = _home(environ)
        return cls._parsed(_raw_values(environ, _read_toml(environ.get("EVIDENCE_CONFIG"), home), home))

    @classmethod
    def defaults(cls) -> Settings:
        """Every setting at the table's default, as with nothing set and no TOML file (reads neither): what a
        component that takes settings one by one (evidence.web.WebConfig) falls back to."""
        return cls._parsed(_raw_values({}, {}, _home({})))

    @classmethod
    def _parsed(cls, raw: Mapping[str, str]) -> Settings:
        """Settings from each variable's text (_raw_values); the S3 section only for an s3:// store."""
        values = _parse_section(raw, "")
        s3 = None
        if values["store_url"].startswith("s3://"):
            bucket, prefix = s3_bucket_and_prefix(values["store_url"])
            s3 = S3Settings(bucket=bucket, prefix=prefix, **_parse_section(raw, "s3"))
        return cls(**values, s3=s3, raw=dict(raw))


def _home(environ: Mapping[str, str]) -> Path:
    """EVIDENCE_HOME from *environ*, else its default (the TOML file is found through it)."""
    setting = SETTINGS_BY_NAME["EVIDENCE_HOME"]
    home: Path = setting.parse(setting.name, environ.get(setting.name, setting.default))
    return home


def _read_toml(config_path: str | None, home: Path) -> dict[str, Any]:
    """The TOML file EVIDENCE_CONFIG names (which must exist), else $EVIDENCE_HOME/evidence.toml if it exists."""
    path = Path(config_path) if config_path else home / "evidence.toml"
    if not config_path and not path.exists():
        return {}
    try:
        toml = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigInvalid("EVIDENCE_CONFIG", str(path), f"Cannot read TOML: {exc}") from exc
    # "home" has always been accepted (and, as the file is found through it, ignored).
    known = {s.toml_key for s in SETTINGS if s.in_toml} | {"home"}
    unknown = sorted(set(toml) - known)
    if unknown:
        raise ConfigInvalid("EVIDENCE_CONFIG", str(path), f"Unknown keys: {', '.join(unknown)}.")
    return toml


def _toml_text(value: Any) -> str:
    """A TOML value as the text an environment variable would hold: `true`/`false` for booleans (TOML's own
    spelling, which str() would make `True`), numbers and strings as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _raw_values(environ: Mapping[str, str], toml: Mapping[str, Any], home: Path) -> dict[str, str]:
    """Each variable's text: from *environ*, else *toml*, else its default with $EVIDENCE_HOME and
    $EVIDENCE_STATION filled in."""
    given = {s.name: environ[s.name] if s.name in environ else _toml_text(toml[s.toml_key])
             for s in SETTINGS if s.name in environ or (s.in_toml and s.toml_key in toml)}
    station = given.get("EVIDENCE_STATION", SETTINGS_BY_NAME["EVIDENCE_STATION"].default)
    # Without its trailing "/", the root folder as home joins like a Path: "/" + "/worm".
    fill = {"EVIDENCE_HOME": str(home).rstrip("/"), "EVIDENCE_STATION": station}
    return {s.name: given[s.name] if s.name in given else s.default_text(**fill) for s in SETTINGS}


def _parse_section(raw: Mapping[str, str], section: str) -> dict[str, Any]:
    """The attributes of one section ("" for Settings, "s3" for S3Settings), parsed in table order."""
    return {s.attribute: s.parse(s.name, raw[s.name]) for s in SETTINGS if s.section == section and s.attribute}
