import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ingest.config import S3Settings, Settings
from ingest.errors import ConfigInvalid
from ingest.settings_table import SETTINGS, SETTINGS_BY_NAME, settings_epilog, settings_markdown

ROOT = Path(__file__).parents[2]

#: EVIDENCE_* names in the code that are not environment variables.
NOT_VARIABLES = {"EVIDENCE_AREAS"}  # storage.backends.local_tree: the store's top-level folders


def test_defaults_live_under_evidence_home(tmp_path):
    s = Settings.from_env({"EVIDENCE_HOME": str(tmp_path)})
    assert s.database_url == f"sqlite:///{tmp_path / 'catalog.db'}"
    assert s.store_path == tmp_path / "worm" and s.staging_dir == tmp_path / "staging"
    assert (s.station, s.station_tz, s.routine_retention_months, s.probe_workers) == (
        "station-1", "Asia/Shanghai", 6, 2)
    assert (s.station_name, s.station_key_path) == ("station-1", tmp_path / "keys" / "station-1.ed25519.pem")
    assert (s.status_addr, s.web_addr, s.s3) == (("127.0.0.1", 8765), ("127.0.0.1", 8000), None)


def test_name_and_key_default_to_the_station_code(tmp_path):
    s = Settings.from_env({"EVIDENCE_HOME": str(tmp_path), "EVIDENCE_STATION": "dock-7"})
    assert (s.station_name, s.station_key_path) == ("dock-7", tmp_path / "keys" / "dock-7.ed25519.pem")


def test_the_dataclass_defaults_are_the_tables(tmp_path):
    # Given only what depends on EVIDENCE_HOME and EVIDENCE_STATION
    from_env = Settings.from_env({"EVIDENCE_HOME": str(tmp_path)})
    derived = {"home", "database_url", "store_url", "staging_dir", "station_name", "station_key_path",
               "export_key_path"}
    # When the rest is left to the dataclass, Then it equals what from_env reads from the table
    assert Settings(**{name: getattr(from_env, name) for name in derived}) == from_env
    s3 = Settings.from_env({"EVIDENCE_HOME": str(tmp_path), "EVIDENCE_STORE_URL": "s3://evidence-bj"}).s3
    assert s3 == S3Settings(bucket="evidence-bj", prefix="")
    assert (s3.region, s3.part_size_bytes, s3.multipart_threshold_bytes, s3.concurrency) == (
        "us-east-1", 16 * 2**20, 64 * 2**20, 4)


def test_every_attribute_has_one_setting():
    def attributes(section):
        return [s.attribute for s in SETTINGS if s.section == section and s.attribute]
    assert sorted(attributes("")) == sorted(f.name for f in dataclasses.fields(Settings) if f.name not in {"s3", "raw"})
    assert sorted(attributes("s3")) == sorted(
        f.name for f in dataclasses.fields(S3Settings) if f.name not in {"bucket", "prefix"})
    assert len(SETTINGS_BY_NAME) == len(SETTINGS)


@pytest.mark.parametrize(("key", "value", "why"), [
    ("EVIDENCE_ROUTINE_RETENTION_MONTHS", "3", "routine retention of 3 month(s) is below the legal minimum of 6 "
     "months."),
    ("EVIDENCE_ROUTINE_RETENTION_MONTHS", "ten", "Not a valid integer."),
    ("EVIDENCE_STATION_TZ", "Mars/Base", "Not a known IANA time zone."),
    ("EVIDENCE_STATION_PLACE", "north", "Expected 'LAT,LON' in decimal degrees."),
    ("EVIDENCE_STATION_PLACE", "100,10", "Latitude must be within ±90 and longitude within ±180."),
    ("EVIDENCE_CASE_PATTERN", "([", "Not a regular expression:"),
    ("EVIDENCE_STATION", "../x", "Use 1-64 letters"),
    ("EVIDENCE_PROBE_WORKERS", "0", "Must be at least 1."),
    ("EVIDENCE_PROBE_TIMEOUT_S", "-1", "Must be above 0."),
    ("EVIDENCE_STORE_URL", "ftp://x", "Use file://PATH or s3://"),
    ("EVIDENCE_STORE_URL", "s3://Bad_Bucket", "Not a valid S3"),
    ("EVIDENCE_PROFILES_DIR", "/no/such/dir", "Not a folder."),
    ("EVIDENCE_RESCAN_S", "often", "Not a number of seconds."),
    ("EVIDENCE_DISK_FULL_WAIT_S", "-1", "Must not be negative."),
    ("EVIDENCE_OUTBOX_RELAY_S", "0", "Must be more than 0 seconds."),
    ("EVIDENCE_STATUS_ADDR", "8765", "Use HOST:PORT (port 0 picks a free one), or leave it empty to turn it off."),
    ("EVIDENCE_WEB_ADDR", "host:http", "Use HOST:PORT"),
    ("EVIDENCE_CLEAR_DEVICES", "always", "Use one of: profile, never."),
    ("EVIDENCE_WEB_SECURE_COOKIES", "yes", "Use one of: true, false."),
    ("EVIDENCE_WEB_TRUSTED_PROXIES", "10.0.0.1,proxy", "'proxy' is not an IP address or network."),
    ("EVIDENCE_TIME_FLOOR", "1960-01-01", "Must lie between 1970-01-01 and 2100-01-01."),
    ("EVIDENCE_TIME_FLOOR", "2005", "Not a date (YYYY-MM-DD)."),
    ("EVIDENCE_BROKER_URL", "http://x", "Use redis://HOST:PORT/DB"),
    ("EVIDENCE_QUEUE_NAMESPACE", "9lives", "Use up to 41 letters, digits, '_' or '-'."),
    ("EVIDENCE_REDIS_MAINTENANCE_CHANCE", "0", "Must be at least 1."),
    ("EVIDENCE_STORE_SCRATCH_AGE_S", "nan", "Not a number of seconds."),
    ("EVIDENCE_STORE_SCRATCH_AGE_S", "inf", "Not a number of seconds."),
    ("EVIDENCE_STORE_SCRATCH_AGE_S", "1e20", "Too long: at most 3153600000 seconds (100 years)."),
    ("EVIDENCE_STAGING_SWEEP_S", "-inf", "Not a number of seconds."),
])
def test_bad_values_name_the_key_the_value_and_why(tmp_path, key, value, why):
    with pytest.raises(ConfigInvalid) as info:
        Settings.from_env({"EVIDENCE_HOME": str(tmp_path), key: value})
    assert str(info.value).startswith(f"Config '{key}' has value '{value}'. {why}")
    assert (info.value.key, info.value.value) == (key, value)


def test_unusual_good_values(tmp_path):
    s = Settings.from_env({"EVIDENCE_HOME": str(tmp_path), "EVIDENCE_STATUS_ADDR": "", "EVIDENCE_WEB_ADDR": "",
                           "EVIDENCE_WEB_TRUSTED_PROXIES": " 10.0.0.0/8, 10.0.0.0/8,", "EVIDENCE_MOUNT_ROOTS": ":/a::",
                           "EVIDENCE_TIME_FLOOR": " 2010-02-03 ", "EVIDENCE_METRICS_TOKEN": " t0k "})
    assert (s.status_addr, s.web_addr, s.web_trusted_proxies, s.mount_roots) == (
        None, ("127.0.0.1", 8000), ("10.0.0.0/8",), ("/a",))
    assert (s.time_floor.isoformat(), str(s.metrics_token)) == ("2010-02-03T00:00:00+00:00", "t0k")


def test_toml_file_is_read_and_the_environment_wins(tmp_path: Path):
    (tmp_path / "evidence.toml").write_text('station = "zfy-dock-7"\nroutine_retention_months = 12\n'
                                            'station_place = "39.9,116.4"\n', encoding="utf-8")
    s = Settings.from_env({"EVIDENCE_HOME": str(tmp_path), "EVIDENCE_ROUTINE_RETENTION_MONTHS": "18"})
    assert (s.station, s.routine_retention_months, s.station_place) == ("zfy-dock-7", 18, (39.9, 116.4))
    assert s.station_key_path == tmp_path / "keys" / "zfy-dock-7.ed25519.pem"


def test_every_toml_key_is_read(tmp_path: Path):
    # Given a TOML file that sets every key to a value other than its default
    home = str(tmp_path)
    other = {"EVIDENCE_STATION": "dock-9", "EVIDENCE_STATION_NAME": "Dock 9", "EVIDENCE_STAGING_DIR": "/srv/staging",
             "EVIDENCE_DATABASE_URL": "sqlite:////srv/c.db", "EVIDENCE_FIXITY_SAMPLE": "7",
             "EVIDENCE_WEB_SECURE_COOKIES": "true", "EVIDENCE_STORE_URL": "s3://evidence-bj/x",
             "EVIDENCE_STATION_KEY": "/srv/k.pem", "EVIDENCE_S3_REGION": "cn-north-1", "EVIDENCE_S3_CONCURRENCY": "2",
             "EVIDENCE_EXPORT_KEY": "/srv/export.pem"}
    lines = [f'{s.toml_key} = "{other.get(s.name, s.default)}"'.replace("\\", "\\\\") for s in SETTINGS if s.in_toml]
    (tmp_path / "evidence.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # When the environment sets nothing else, Then every value comes from the file
    from_toml = Settings.from_env({"EVIDENCE_HOME": home})
    assert from_toml == Settings.from_env({"EVIDENCE_HOME": home, "EVIDENCE_CONFIG": "/dev/null", **other})
    assert (from_toml.station_name, from_toml.fixity_sample, from_toml.web_secure_cookies) == ("Dock 9", 7, True)
    assert from_toml.s3 is not None and (from_toml.s3.region, from_toml.s3.concurrency) == ("cn-north-1", 2)


def test_toml_booleans_and_numbers_are_read_as_toml_writes_them(tmp_path: Path):
    # Given a TOML file written the way TOML writes values: an unquoted boolean and number
    (tmp_path / "evidence.toml").write_text("web_secure_cookies = false\nroutine_retention_months = 12\n",
                                            encoding="utf-8")
    # Then they are read as if the environment had said "false" and "12"
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path)})
    assert settings.web_secure_cookies is False and settings.retention_policy.routine_months == 12
    (tmp_path / "evidence.toml").write_text("web_secure_cookies = true\n", encoding="utf-8")
    assert Settings.from_env({"EVIDENCE_HOME": str(tmp_path)}).web_secure_cookies is True


def test_toml_with_unknown_keys_or_bad_syntax_is_refused(tmp_path: Path):
    (tmp_path / "evidence.toml").write_text('staton = "typo"\n', encoding="utf-8")
    with pytest.raises(ConfigInvalid, match=r"Unknown keys: staton\."):
        Settings.from_env({"EVIDENCE_HOME": str(tmp_path)})
    bad = tmp_path / "bad.toml"
    bad.write_text("station = \n", encoding="utf-8")
    with pytest.raises(ConfigInvalid, match="Cannot read TOML"):
        Settings.from_env({"EVIDENCE_HOME": str(tmp_path), "EVIDENCE_CONFIG": str(bad)})
    with pytest.raises(ConfigInvalid, match="Cannot read TOML"):
        Settings.from_env({"EVIDENCE_HOME": str(tmp_path), "EVIDENCE_CONFIG": str(tmp_path / "missing.toml")})


def test_s3_store_settings_and_the_secret_stays_hidden(tmp_path):
    s = Settings.from_env({"EVIDENCE_HOME": str(tmp_path), "EVIDENCE_STORE_URL": "s3://evidence-bj/station-7/",
                           "EVIDENCE_S3_ENDPOINT": "http://127.0.0.1:9000", "EVIDENCE_S3_ACCESS_KEY": "AK",
                           "EVIDENCE_S3_SECRET_KEY": "very-secret", "EVIDENCE_S3_PART_SIZE_MB": "8"})
    assert s.s3 is not None
    assert (s.s3.bucket, s.s3.prefix, s.s3.endpoint, s.s3.part_size_bytes) == (
        "evidence-bj", "station-7/", "http://127.0.0.1:9000", 8 * 2**20)
    assert str(s.s3.secret_key) == "very-secret"
    assert "very-secret" not in repr(s)
    with pytest.raises(ConfigInvalid, match="Must be at least 5"):
        Settings.from_env({"EVIDENCE_HOME": str(tmp_path), "EVIDENCE_STORE_URL": "s3://evidence-bj",
                           "EVIDENCE_S3_PART_SIZE_MB": "1"})


def test_s3_settings_are_not_read_for_a_local_store(tmp_path):
    s = Settings.from_env({"EVIDENCE_HOME": str(tmp_path), "EVIDENCE_S3_PART_SIZE_MB": "1"})
    assert s.s3 is None


def test_docs_configuration_is_what_the_table_makes():
    docs = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert docs == settings_markdown(), "docs/configuration.md is out of date: run python scripts/config_docs.py"


def test_every_setting_is_documented_in_docs_configuration():
    docs = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for s in SETTINGS:
        assert f"| `{s.name}` |" in docs, s.name


def test_the_docs_script_finds_the_page_up_to_date():
    script = ROOT / "scripts" / "config_docs.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, check=False)
    assert (result.returncode, result.stderr) == (0, "")


def test_every_evidence_name_in_the_code_is_a_setting():
    used: dict[str, str] = {}
    for folder in ("ingest", "catalog", "evidence", "storage"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                text = path.read_bytes().decode("utf-8", errors="ignore")
                for name in re.findall(r"\bEVIDENCE_[A-Z0-9_]*[A-Z0-9]", text):
                    used.setdefault(name, str(path.relative_to(ROOT)))
    known = set(SETTINGS_BY_NAME) | NOT_VARIABLES
    assert {name: where for name, where in used.items() if name not in known} == {}
    assert "EVIDENCE_HOME" in used  # the scan found the code


def test_the_epilog_lists_every_setting_for_click_help():
    @click.command(epilog=settings_epilog())
    def command() -> None:
        pass
    output = CliRunner().invoke(command, ["--help"], terminal_width=100).output
    for s in SETTINGS:
        assert s.name in output, s.name
    assert "EVIDENCE_S3_REGION (default us-east-1): S3 region" in output
