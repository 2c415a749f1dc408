"""The one table of settings: each EVIDENCE_* variable, the attribute it sets, its default, parser and meaning.

ingest.config reads the environment and the TOML file through it and takes the dataclass defaults from it;
docs/configuration.md (scripts/config_docs.py) and the CLI's help are rendered from it. A default is the text
an operator would write; `$EVIDENCE_HOME` and `$EVIDENCE_STATION` in it stand for those settings' values.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from string import Template
from typing import Any

from catalog import DEFAULT_CASE_PATTERN
from ingest import settings_parsers as p

__all__ = ["SETTINGS", "SETTINGS_BY_NAME", "Setting", "settings_epilog", "settings_markdown"]


@dataclass(frozen=True)
class Setting:
    name: str  # EVIDENCE_…
    default: str  # raw text, parsed like a given value; may use $EVIDENCE_HOME and $EVIDENCE_STATION
    parse: p.Parser
    help: str  # English, Markdown
    sets: str | None = None  # the attribute, where it is not the TOML key less the section; "" for none
    shown_default: str = ""  # Markdown shown instead of an empty default that means something ("AWS")
    section: str = ""  # "s3": read only for an s3:// store, into Settings.s3
    in_toml: bool = True  # False: only the environment sets it (the TOML file is found through it)

    @property
    def toml_key(self) -> str:
        """The key in the TOML file: the name in lower case without the prefix."""
        return self.name.removeprefix("EVIDENCE_").lower()

    @property
    def attribute(self) -> str:
        """The attribute of Settings (of S3Settings in section "s3") it sets: the TOML key without the section's
        prefix unless `sets` names another; "" for none."""
        if self.sets is not None:
            return self.sets
        return self.toml_key.removeprefix(f"{self.section}_") if self.section else self.toml_key

    def default_text(self, **values: str) -> str:
        """The default with $EVIDENCE_HOME / $EVIDENCE_STATION replaced by *values*."""
        return Template(self.default).safe_substitute(values)

    def parsed_default(self) -> Any:
        """The value this setting has when nothing sets it (defaults using other settings excepted)."""
        return self.parse(self.name, self.default)


#: A setting of the S3 section: read only for an s3:// store, into Settings.s3.
_s3 = partial(Setting, section="s3")


#: Every setting, in the order the documentation lists them.
SETTINGS: tuple[Setting, ...] = (
    Setting("EVIDENCE_HOME", "./evidence-data", p.home_path,
       "folder for the embedded catalogue, WORM store and staging", in_toml=False),
    Setting("EVIDENCE_CONFIG", "", p.text, "optional TOML file with the keys below", sets="",
       shown_default="`$EVIDENCE_HOME/evidence.toml` if it exists", in_toml=False),
    Setting("EVIDENCE_DATABASE_URL", "sqlite:///$EVIDENCE_HOME/catalog.db", p.text,
       "catalogue; PostgreSQL: `postgresql+psycopg://user@host:5432/db`"),
    Setting("EVIDENCE_STORE_URL", "file://$EVIDENCE_HOME/worm", p.store_url,
       "WORM store: `file://PATH` (local) or `s3://BUCKET[/PREFIX]` (S3 Object Lock)"),
    _s3("EVIDENCE_S3_ENDPOINT", "", p.optional_text,
       "S3 endpoint URL for MinIO, Ceph RGW, SeaweedFS (`http://127.0.0.1:9000`)", shown_default="AWS"),
    _s3("EVIDENCE_S3_ACCESS_KEY", "", p.optional_text, "S3 access key", shown_default="boto3's default chain"),
    _s3("EVIDENCE_S3_SECRET_KEY", "", p.optional_secret,
       "S3 secret key (kept in a `Secret`, never printed)", shown_default="boto3's default chain"),
    _s3("EVIDENCE_S3_REGION", "us-east-1", p.text, "S3 region"),
    _s3("EVIDENCE_S3_MULTIPART_THRESHOLD_MB", "64", p.megabytes(5),
       "files at least this large (MiB, ≥ 5) are uploaded in parts; files of 5 GiB or more always are (S3 "
       "takes no larger single PUT)",
       sets="multipart_threshold_bytes"),
    _s3("EVIDENCE_S3_PART_SIZE_MB", "16", p.megabytes(5),
       "part size in MiB (≥ 5; raised automatically to stay within 10,000 parts)", sets="part_size_bytes"),
    _s3("EVIDENCE_S3_CONCURRENCY", "4", p.integer(1), "parts in flight at once (memory ≈ concurrency × part size)"),
    _s3("EVIDENCE_S3_READBACK", "queued", p.choice("queued", "inline"),
        "when a new object is read back whole and re-hashed: `queued` — by the verify queue after the upload (the "
        "recording is `archived`, every part checked by the server, until then `verified`); `inline` — before the "
        "upload returns (slower: the archive step reads every byte again)"),
    Setting("EVIDENCE_STAGING_DIR", "$EVIDENCE_HOME/staging", p.absolute_path,
       "station staging area (keep it on the store's filesystem: archiving is then a hard link, no second pass)"),
    Setting("EVIDENCE_STATION", "station-1", p.station_code, "this station's code (1-64 letters, digits, `_.-`)"),
    Setting("EVIDENCE_STATION_NAME", "$EVIDENCE_STATION", p.text, "this station's display name"),
    Setting("EVIDENCE_STATION_KEY", "$EVIDENCE_HOME/keys/$EVIDENCE_STATION.ed25519.pem", p.path,
       "the station's Ed25519 signing key (created 0600 at first use; its public key is registered in the catalogue)",
       sets="station_key_path"),
    Setting("EVIDENCE_EXPORT_KEY", "$EVIDENCE_HOME/keys/export.ed25519.pem", p.path,
       "the Ed25519 key evidence packages are signed with; made 0600 and certified by the agency root with "
       "`evidence keys export-key init` (docs/keys.md)", sets="export_key_path"),
    Setting("EVIDENCE_STATION_PLACE", "", p.place, "`LAT,LON` (decimal degrees) used when a recording carries no GPS"),
    Setting("EVIDENCE_STATION_TZ", "Asia/Shanghai", p.zone,
       "zone for device clocks that a profile leaves open, and the calendar of case dates (opened, closed, retention); "
       "part of the adopted retention policy (see below)"),
    Setting("EVIDENCE_REPORT_FONT", "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", p.path,
       "TrueType/TTC font with Chinese glyphs embedded in an evidence package's `report.pdf` (Debian "
       "`fonts-wqy-zenhei`); missing: the package has `report.html` only and the export says why"),
    Setting("EVIDENCE_ROUTINE_RETENTION_MONTHS", "6", p.routine_months,
       "routine retention; below 6 is refused. This, the zone, the case types and the disposal approval are the "
       "retention policy: the catalogue adopts them once (a `policy_adopted` custody event, at the station's first "
       "start), and every later process must run with the same terms or is refused (exit 2, naming each "
       "difference); an administrator changes them with `evidence retention adopt`"),
    Setting("EVIDENCE_CASE_PATTERN", DEFAULT_CASE_PATTERN, p.case_pattern,
       "regular expression a whole case number must match (e.g. `京朝城管罚字〔2026〕第00123号`)"),
    Setting("EVIDENCE_CASE_TYPES", "", p.case_types,
       "TOML file of case types and their retention (`years = N` or `permanent = true`); replaces the built-in table; "
       "part of the adopted retention policy",
       shown_default="built-in table"),
    Setting("EVIDENCE_DISPOSAL_APPROVAL", "required", p.choice("required", "none"),
       "`required`: a disposal batch is carried out only when a second, named person approves it; `none`: a sweep "
       "disposes at once; part of the adopted retention policy"),
    Setting("EVIDENCE_SENSITIVITY_NAMES", "", p.sensitivity_names,
       "TOML file of the agency's names for the sensitivity classes, e.g. `[state_secret]` `zh = \"涉密\"` "
       "`en = \"classified\"` (classes `public`, `internal`, `commercial`, `personal`, `state_secret`; one left "
       "out keeps its built-in name; docs/sensitivity.md); shown on every page and accepted by `evidence class`",
       shown_default="公开, 内部, 商业秘密, 个人隐私, 国家秘密"),
    Setting("EVIDENCE_ACTION_CHECKLIST", "", p.action_checklist,
       "YAML or JSON file of the agency's action checklist (音像记录事项清单): each action type's `code`, `name`, "
       "`name_en` and whether it needs `full_recording`; replaces the built-in list (docs/checklist.md)",
       shown_default="查封扣押, 现场检查, 询问, 听证, 强制执行 (full recording); 文书送达, 回访"),
    Setting("EVIDENCE_ACTION_TOLERANCE_S", "120", p.action_tolerance,
       "a case action still counts as covered when its recordings begin up to this late or end up to this early "
       "(0 to 900 seconds; docs/checklist.md)"),
    Setting("EVIDENCE_PROFILES_DIR", "", p.profiles_dir, "extra folder of device-profile YAML files"),
    Setting("EVIDENCE_BROKER_URL", "", p.broker_url,
       "queue broker: `redis://127.0.0.1:6379/0` or `amqp://guest:guest@127.0.0.1:5672/`; when set, ingest leaves "
       "recordings `staged` and `evidence worker` archives them", shown_default="none (in-process)"),
    Setting("EVIDENCE_QUEUE_NAMESPACE", "evidence", p.namespace,
       "prefix of the queue names and of Redis keys. Queues: `<namespace>-archive-<station>` (one per station, e.g. "
       "`evidence-archive-station-1`), `<namespace>-derive` (derived media and decode checks), `<namespace>-verify`"),
    Setting("EVIDENCE_OUTBOX_RELAY_S", "2", p.positive_seconds,
       "how often `station watch` and every `worker` hand waiting outbox messages to the broker (also right after each "
       "dock commit; messages wait in the catalogue's outbox and survive a broker outage)"),
    Setting("EVIDENCE_RECONCILE_AFTER_S", "900", p.positive_seconds,
       "a recording of this station still `staged` this long, with no message sent and no worker holding or trying it "
       "for as long, is queued again by the reconciler in every `worker`"),
    Setting("EVIDENCE_ARCHIVE_LEASE_S", "60", p.positive_seconds,
       "a worker archiving a recording holds it this long, renewed every third of it; a killed worker's hold runs out "
       "after it"),
    Setting("EVIDENCE_WORKER_STOP_S", "90", p.positive_seconds,
       "a worker asked to stop (SIGTERM, SIGINT) takes no new messages and gives its running ones this long to "
       "finish, saying every 10 s which it waits for; it then leaves with a WARNING naming each one still running "
       "and where it was (a store that stopped answering mid-upload), and the broker gives those messages to a "
       "worker again. Keep it below the service manager's own stop timeout (Compose `stop_grace_period`, systemd "
       "`TimeoutStopSec`: 2 minutes in ours)"),
    Setting("EVIDENCE_REDIS_HEARTBEAT_S", "30", p.positive_seconds,
       "Redis broker: a worker silent this long counts as dead and its unacknowledged messages are requeued (dramatiq "
       "`heartbeat_timeout`)"),
    Setting("EVIDENCE_REDIS_MAINTENANCE_CHANCE", "50000", p.integer(1),
       "Redis broker: of every million broker commands, how many also requeue dead workers' messages (dramatiq's "
       "default 1000 took over 8 min in 2 of 5 trials)"),
    Setting("EVIDENCE_MOUNT_ROOTS", "/media:/run/media/*", p.mount_roots,
       "where `station watch` looks for docked recorders (`:`-separated paths or globs; volumes directly below, or one "
       "level down for per-user folders)"),
    Setting("EVIDENCE_STATION_WORKERS", "4", p.integer(1), "devices ingested at once"),
    Setting("EVIDENCE_MOUNT_STABLE_S", "1.0", p.seconds, "a new volume must be unchanged this long before it is read"),
    Setting("EVIDENCE_RESCAN_S", "5", p.seconds, "periodic rescan of the mount roots, the safety net behind inotify"),
    Setting("EVIDENCE_CLEAR_DEVICES", "profile", p.choice("profile", "never"),
       "`profile`: clear verified files where the device profile allows it; `never`: never delete on a device"),
    Setting("EVIDENCE_STATUS_ADDR", "127.0.0.1:8765", p.address,
       "the station's kiosk and metrics endpoint (`GET /status`, `GET /metrics`, tagging; `HOST:PORT`; port 0 picks a "
       "free one; empty turns it off)"),
    Setting("EVIDENCE_STATUS_HEARTBEAT_S", "5", p.positive_seconds,
       "`station watch` rewrites its status at least this often; a status older than three beats reads as not running "
       "(`\"stale\": true`)"),
    Setting("EVIDENCE_STAGING_SWEEP_S", "300", p.positive_seconds,
       "`station watch` removes staged copies nothing needs (archived and in the store, or disposed) at start and this "
       "often"),
    Setting("EVIDENCE_STORE_SCRATCH_AGE_S", "86400", p.positive_seconds,
       "a write to the evidence store untouched this long is taken for one a killed process left, and removed by "
       "`station watch` (with its staging sweep) and at the start of `evidence ingest`: a half-written file in the "
       "local store's `incoming/`, an S3 multipart upload never completed or aborted. Keep it above the longest "
       "upload (S3 dates an upload from its start). A second name of a stored object left there by a killed write "
       "goes at once"),
    Setting("EVIDENCE_DERIVE", "background", p.choice("background", "wait", "later"),
       "when thumbnails, browser proxies and decode checks are made after an archived ingest without a broker: "
       "`background` — `evidence ingest` returns once its recordings are archived and a renderer it starts "
       "(`evidence derive-pending`, logging to `$EVIDENCE_HOME/logs/media-work.log`) makes them; `wait` — before "
       "`evidence ingest` returns (unless another renderer of the same home is at work: it does them); `later` — by "
       "the next `station watch` or `evidence derive-pending`. An embedded "
       "`station watch` renders in a thread of its own unless `later`. With a broker the derive queue's workers "
       "render, whatever this says"),
    Setting("EVIDENCE_DISK_FULL_WAIT_S", "600", p.seconds,
       "how long an ingest pauses for staging space to return before giving up on the file"),
    Setting("EVIDENCE_ANCHOR_INTERVAL_S", "3600", p.seconds,
       "how often `station watch`, `worker --schedule` and `evidence serve` write the custody chain head, signed, to "
       "WORM storage; an anchor is also written after every dock session, disposal batch and `evidence verify` (0: "
       "only then)"),
    Setting("EVIDENCE_TSA_URL", "", p.text,
       "RFC 3161 time-stamping authority (`https://…`): anchors and evidence packages carry its token over their "
       "signed bytes (`openssl ts -verify`, docs/verification.md); a TSA that fails never holds them back. Empty: "
       "no trusted timestamp, the times are the archive's own clock", shown_default="none"),
    Setting("EVIDENCE_TSA_TIMEOUT_S", "10", p.positive_seconds,
       "how long one request to the time-stamping authority may take"),
    Setting("EVIDENCE_TSA_CA", "", p.text,
       "PEM file of the time-stamping authority's CA certificate (and, for tokens asked for without certificates, "
       "its own): `evidence verify` then checks each stored token's signature against it, not only its imprint. "
       "Empty: the imprint only (the signature is for `openssl ts -verify`)", shown_default="none"),
    Setting("EVIDENCE_FIXITY_INTERVAL_S", "3600", p.seconds,
       "how often `worker --schedule` queues a fixity check (0: never)"),
    Setting("EVIDENCE_FIXITY_SAMPLE", "100", p.integer(1),
       "recordings re-verified per fixity check, least recently checked first"),
    Setting("EVIDENCE_WEB_ADDR", p.WEB_ADDR, p.web_address,
       "where `evidence serve` listens (`HOST:PORT`; empty: the default)"),
    Setting("EVIDENCE_WEB_SECURE_COOKIES", "false", p.boolean,
       "`true` behind a TLS reverse proxy: cookies are sent over HTTPS only"),
    Setting("EVIDENCE_WEB_TRUSTED_PROXIES", "127.0.0.1", p.proxies,
       "addresses or networks (comma-separated) whose `X-Forwarded-For` and `X-Forwarded-Proto` `evidence serve` "
       "believes (uvicorn's `forwarded_allow_ips`): the client address the sign-in backoff counts and the custody log "
       "records. Empty: none; `*`: anyone (only when nothing but the proxy reaches the app). The Compose file sets its "
       "network's gateway `172.30.53.1`"),
    Setting("EVIDENCE_ACCESS_REASON", "download", p.choice("view", "play", "download"),
       "the first step that needs a stated reason for access: `view` (opening a recording, a thumbnail, "
       "`/api/recordings/{id}`, `evidence show`), `play` (playback, photo viewing) or `download` (the original, "
       "`evidence cat`, an export; always asked)"),
    Setting("EVIDENCE_PROBE_WORKERS", "2", p.integer(1),
       "parallel describers (ffprobe / EXIF) running beside the copy"),
    Setting("EVIDENCE_PROBE_TIMEOUT_S", "120", p.probe_timeout,
       "ffprobe time limit per file (a hostile file cannot hang a station)"),
    Setting("EVIDENCE_TIME_FLOOR", "2005-01-01", p.date_floor,
       "capture times before this date (UTC) are a wrong device clock: flagged `time_implausible`, and they never "
       "count for retention"),
    Setting("EVIDENCE_STAGED_ALARM_S", "3600", p.seconds,
       "a recording still `staged` (not in WORM storage) this long raises the staged alarm (station status and "
       "`/metrics` for its own recordings, `evidence station status`, `/health`, the web `/metrics`)"),
    Setting("EVIDENCE_DEVICE_SILENT_DAYS", "7", p.integer(1),
       "a recorder in service and assigned to an officer that has not docked for this many days raises a `silent` "
       "device alert (`evidence device alerts`); one added and never docked counts from when it was added"),
    Setting("EVIDENCE_CLOCK_DRIFT_S", "60", p.positive_seconds,
       "a recorder whose clock, as measured at its latest dock, is off the station's by more than this raises a "
       "`clock_drift` device alert"),
    Setting("EVIDENCE_CLOCK_SET", "true", p.boolean,
       "校时: at the end of each dock, write the station's time to a recorder whose profile says how (`clock.set`: "
       "a file the device reads when it starts), each write a `device_clock_set` custody event; `false`: never "
       "write to a device"),
    Setting("EVIDENCE_PARTIAL_ALARM_S", "86400", p.seconds,
       "a resumable partial copy (`staging/*.part`, a copy cut short) not written for this long raises the station's "
       "`partial_copy_idle` alarm (station status and `/metrics`): its recorder has not been docked again to finish "
       "it"),
    Setting("EVIDENCE_MAP_TILES", "", p.tile_url,
       "map tiles for the web app's maps (Leaflet's address template, e.g. `https://tiles.example.gov.cn/{z}/{x}/{y}."
       "png`, or a path on the web app's own server such as `/tiles/{z}/{x}/{y}.png` behind the same proxy): an "
       "agency's own offline tile server; its origin is added to the pages' `img-src`. Empty: no tiles, the points "
       "drawn on a plain latitude/longitude grid (nothing is fetched from anywhere)"),
    Setting("EVIDENCE_MAP_ATTRIBUTION", "", p.text,
       "the credit the tile server's licence asks for, shown in the map's corner (e.g. `© OpenStreetMap "
       "contributors`)"),
    Setting("EVIDENCE_METRICS_TOKEN", "", p.token,
       "bearer token that opens `/metrics`, `/api/openapi.json` and `/api/docs` without signing in (for Prometheus: "
       "`authorization: {type: Bearer, credentials_file: …}`); without it only signed-in users see them"),
)

#: The same table by variable name.
SETTINGS_BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}

_PREAMBLE = """\
Environment variables, else keys of the TOML file (`EVIDENCE_CONFIG`, else `$EVIDENCE_HOME/evidence.toml`;
keys are the names below in lower case without the prefix, e.g. `station = "dock-7"`; `EVIDENCE_HOME` and
`EVIDENCE_CONFIG` come from the environment only), else defaults. A bad value stops the program at start:
`Config 'EVIDENCE_ROUTINE_RETENTION_MONTHS' has value '3'. routine retention of 3 month(s) is below the legal
minimum of 6 months.` The S3 settings are read only when `EVIDENCE_STORE_URL` is an `s3://` URL."""


def _shown_default(setting: Setting) -> str:
    if setting.shown_default:
        return setting.shown_default
    return f"`{setting.default}`" if setting.default else "none"


def settings_markdown() -> str:
    """docs/configuration.md: a preamble and the table (variable, default, meaning)."""
    rows = [_markdown_row(f"`{s.name}`", _shown_default(s), s.help) for s in SETTINGS]
    return "\n".join([
        "# Configuration", "",
        "<!-- Generated from ingest/settings_table.py by scripts/config_docs.py; edit the table, not this file. -->",
        "", _PREAMBLE, "",
        _markdown_row("variable", "default", "meaning"), "|---|---|---|", *rows, "",
        "No variable grants an identity: who runs a command is the OS account and its binding (`evidence user bind`).",
        ""])


def _markdown_row(*cells: str) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def settings_epilog() -> str:
    """Every setting as a paragraph for a click help epilog (click rewraps each paragraph)."""
    paragraphs = [f"{s.name} (default {_shown_default(s).replace('`', '')}): {s.help.replace('`', '')}"
                  for s in SETTINGS]
    return "\n\n".join(["Settings (environment, else the TOML file EVIDENCE_CONFIG):", *paragraphs])
