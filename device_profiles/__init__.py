"""Device profiles: one YAML file per recorder model and a typed loader."""
from device_profiles.errors import ProfileError, ProfileInvalid, ProfileNotFound
from device_profiles.loader import (
    BUILTIN_DIR,
    TIME_SOURCES,
    ClockRule,
    ClockSetRule,
    DeviceProfile,
    FilenameRule,
    HousekeepingRule,
    IdentityRule,
    Recognition,
    SidecarRule,
    get_profile,
    load_profile,
    load_profiles,
    parse_profile,
)
from device_profiles.matching import is_match, recognise

__all__ = [
    "BUILTIN_DIR", "TIME_SOURCES", "ClockRule", "ClockSetRule", "DeviceProfile", "FilenameRule", "HousekeepingRule",
    "IdentityRule",
    "ProfileError", "ProfileInvalid", "ProfileNotFound", "Recognition", "SidecarRule",
    "get_profile", "is_match", "load_profile", "load_profiles", "parse_profile", "recognise",
]
