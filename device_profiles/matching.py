"""Decide which profile describes a docked device.

`is_match` is a pure decision over the names found on the device; only
`recognise` looks at the disk, and only at the top two levels of the tree.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from device_profiles.errors import ProfileNotFound
from device_profiles.loader import DeviceProfile

__all__ = ["is_match", "list_top_paths", "recognise"]


def is_match(profile: DeviceProfile, present: set[str], volume_label: str | None = None) -> bool:
    """True when *present* (lower-case relative paths) fits the profile's recognition rule."""
    rule = profile.recognise
    if volume_label and rule.volume_labels and volume_label.upper() in {v.upper() for v in rule.volume_labels}:
        return True
    if rule.any_files and not any(p.lower() in present for p in rule.any_files):
        return False
    if rule.all_paths and not all(p.lower() in present for p in rule.all_paths):
        return False
    return bool(rule.any_files or rule.all_paths)


def list_top_paths(root: Path) -> set[str]:
    """Lower-case relative paths of the first two levels under *root* (no symlinks followed)."""
    present: set[str] = set()
    try:
        with os.scandir(root) as top:
            for entry in top:
                name = entry.name.lower()
                present.add(name)
                if entry.is_dir(follow_symlinks=False):
                    try:
                        with os.scandir(entry.path) as sub:
                            present.update(f"{name}/{child.name.lower()}" for child in sub)
                    except OSError:
                        continue
    except OSError:
        return present
    return present


def recognise(root: Path, profiles: Mapping[str, DeviceProfile], *,
              volume_label: str | None = None) -> DeviceProfile:
    """Return the first profile (by name order, specific before generic) matching *root*."""
    present = list_top_paths(root)
    ordered: Iterable[DeviceProfile] = sorted(
        profiles.values(), key=lambda p: (not p.recognise.any_files, p.name))
    for profile in ordered:
        if is_match(profile, present, volume_label):
            return profile
    raise ProfileNotFound(folder=root, known=tuple(sorted(profiles)))
