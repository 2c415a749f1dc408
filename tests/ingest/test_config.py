from pathlib import Path

import pytest

from ingest.config import SETTINGS_HELP, Settings
from ingest.errors import ConfigInvalid


def test_defaults_live_under_evidence_home(tmp_path):
    s = Settings.from_env({"EVIDENCE_HOME": str(tmp_path)})
    assert s.database_url == f"sqlite:///{tmp_path / 'catalog.db'}"
    assert s.store_path == tmp_path / "worm" and s.staging_dir == tmp_path / "staging"
    assert (s.station, s.station_tz, s.routine_retention_months, s.probe_workers) == (
        "station-1", "Asia/Shanghai", 6, 2)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("EVIDENCE_ROUTINE_RETENTION_MONTHS", "3",
     "Config 'EVIDENCE_ROUTINE_RETENTION_MONTHS' has value '3'. routine retention of 3 month(s) is below the legal "
     "minimum of 6 months."),
    ("EVIDENCE_ROUTINE_RETENTION_MONTHS", "ten",
     "Config 'EVIDENCE_ROUTINE_RETENTION_MONTHS' has value 'ten'. Not a valid integer."),
    ("EVIDENCE_STATION_TZ", "Mars/Base",
     "Config 'EVIDENCE_STATION_TZ' has value 'Mars/Base'. Not a known IANA time zone."),
    ("EVIDENCE_STATION_PLACE", "north", "Config 'EVIDENCE_STATION_PLACE' has value 'north'. Expected 'LAT,LON' in "
     "decimal degrees."),
    ("EVIDENCE_STATION_PLACE", "100,10", "Config 'EVIDENCE_STATION_PLACE' has value '100,10'. Latitude must be within "
     "±90 and longitude within ±180."),
    ("EVIDENCE_CASE_PATTERN", "([", "Config 'EVIDENCE_CASE_PATTERN' has value '(['. Not a regular expression:"),
    ("EVIDENCE_STATION", "../x", "Config 'EVIDENCE_STATION' has value '../x'. Use 1-64 letters"),
    ("EVIDENCE_PROBE_WORKERS", "0", "Config 'EVIDENCE_PROBE_WORKERS' has value '0'. Must be at least 1."),
    ("EVIDENCE_PROBE_TIMEOUT_S", "-1", "Config 'EVIDENCE_PROBE_TIMEOUT_S' has value '-1'. Must be above 0."),
    ("EVIDENCE_STORE_URL", "ftp://x", "Config 'EVIDENCE_STORE_URL' has value 'ftp://x'. Use file://PATH or s3://"),
    ("EVIDENCE_STORE_URL", "s3://Bad_Bucket",
     "Config 'EVIDENCE_STORE_URL' has value 's3://Bad_Bucket'. Not a valid S3"),
    ("EVIDENCE_PROFILES_DIR", "/no/such/dir", "Config 'EVIDENCE_PROFILES_DIR' has value '/no/such/dir'. Not a folder."),
])
def test_bad_values_name_the_key_the_value_and_why(tmp_path, key, value, message):
    with pytest.raises(ConfigInvalid) as info:
        Settings.from_env({"EVIDENCE_HOME": str(tmp_path), key: value})
    assert str(info.value).startswith(message)
    assert (info.value.key, info.value.value) == (key, value)


def test_toml_file_is_read_and_the_environment_wins(tmp_path: Path):
    (tmp_path / "evidence.toml").write_text('station = "zfy-dock-7"\nroutine_retention_months = 12\n'
                                            'station_place = "39.9,116.4"\n', encoding="utf-8")
    s = Settings.from_env({"EVIDENCE_HOME": str(tmp_path), "EVIDENCE_ROUTINE_RETENTION_MONTHS": "18"})
    assert (s.station, s.routine_retention_months, s.station_place) == ("zfy-dock-7", 18, (39.9, 116.4))


def test_toml_with_unknown_keys_or_bad_syntax_is_refused(tmp_path: Path):
    (tmp_path / "evidence.toml").write_text('staton = "typo"\n', encoding="utf-8")
    with pytest.raises(ConfigInvalid, match="Unknown keys: staton."):
        Settings.from_env({"EVIDENCE_HOME": str(tmp_path)})
    bad = tmp_path / "bad.toml"
    bad.write_text("station = \n", encoding="utf-8")
    with pytest.raises(ConfigInvalid, match="Cannot read TOML"):
        Settings.from_env({"EVIDENCE_HOME": str(tmp_path), "EVIDENCE_CONFIG": str(bad)})


def test_every_setting_is_documented_in_the_readme():
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    for key in SETTINGS_HELP:
        assert f"`{key}`" in readme, key


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
