"""Notice docked recorders: new volumes under the mount roots, reported once they are stable.

inotify (watchdog) wakes the scan at once; a periodic rescan is the safety net (missed events, roots that
appear later, network filesystems). A candidate volume is a mount point, or a folder a device profile
recognises, directly under a root or one level down (/media/<user>/<label>). A volume is handed over once
its top two levels have stopped changing for `stable_s`, and again only after it has gone and come back.
"""
from __future__ import annotations

import glob
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

__all__ = ["DockWatcher", "Volume", "volume_signature"]

logger = logging.getLogger(__name__)

#: Entries looked at when deciding whether a volume is still settling (bounded cost per scan).
SIGNATURE_ENTRIES = 4000


@dataclass(frozen=True)
class Volume:
    path: Path
    identity: tuple[int, int]  # (st_dev, st_ino): a re-plugged device is a new docking


def volume_signature(path: Path) -> tuple[tuple[str, int, int], ...] | None:
    """Names, sizes and mtimes of the first two levels; None if the volume cannot be read (yet)."""
    entries: list[tuple[str, int, int]] = []
    try:
        with os.scandir(path) as top:
            for entry in top:
                info = entry.stat(follow_symlinks=False)
                entries.append((entry.name, info.st_size, info.st_mtime_ns))
                if entry.is_dir(follow_symlinks=False) and len(entries) < SIGNATURE_ENTRIES:
                    with os.scandir(entry.path) as sub:
                        for child in sub:
                            cinfo = child.stat(follow_symlinks=False)
                            entries.append((f"{entry.name}/{child.name}", cinfo.st_size, cinfo.st_mtime_ns))
                if len(entries) >= SIGNATURE_ENTRIES:
                    break
    except OSError:
        return None
    return tuple(sorted(entries))


class _Wake(FileSystemEventHandler):
    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.event.set()


class DockWatcher:
    """Calls `on_ready(volume)` for each stable new volume and `on_gone(volume)` when it disappears."""

    def __init__(self, roots: list[str], *, is_volume: Callable[[Path], bool], on_ready: Callable[[Volume], None],
                 on_gone: Callable[[Volume], None], stable_s: float = 1.0, rescan_s: float = 5.0) -> None:
        self.roots, self.is_volume = roots, is_volume
        self.on_ready, self.on_gone = on_ready, on_gone
        self.stable_s, self.rescan_s = stable_s, rescan_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._observer = Observer()
        self._watched: set[str] = set()
        self._settling: dict[Volume, tuple[tuple[tuple[str, int, int], ...], float]] = {}
        self._ready: set[Volume] = set()
        self._thread = threading.Thread(target=self._loop, name="dock-watcher", daemon=True)

    def _root_dirs(self) -> list[Path]:
        found = []
        for pattern in self.roots:
            for match in sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]:
                if os.path.isdir(match):
                    found.append(Path(match))
        return found

    def _watch(self, root: Path) -> None:
        key = str(root)
        if key in self._watched:
            return
        try:
            self._observer.schedule(_Wake(self._wake), key, recursive=False)
            self._watched.add(key)
        except OSError as exc:  # inotify limits: the rescan still finds volumes
            logger.warning("Cannot watch %r (%s); relying on the periodic rescan.", key, exc)

    def candidates(self) -> list[Volume]:
        found: list[Volume] = []
        for root in self._root_dirs():
            self._watch(root)
            try:
                children = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
            except OSError:
                continue
            for child in children:
                if os.path.ismount(child) or self.is_volume(child):
                    found.append(self._volume(child))
                    continue
                self._watch(child)  # /media/<user>/: volumes appear one level down
                try:
                    grandchildren = sorted(p for p in child.iterdir() if p.is_dir() and not p.is_symlink())
                except OSError:
                    continue
                found.extend(self._volume(g) for g in grandchildren if os.path.ismount(g) or self.is_volume(g))
        return found

    @staticmethod
    def _volume(path: Path) -> Volume:
        info = path.stat()
        return Volume(path=path, identity=(info.st_dev, info.st_ino))

    def scan_once(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        present = set(self.candidates())
        for volume in list(self._ready | set(self._settling)):
            if volume not in present:
                self._settling.pop(volume, None)
                if volume in self._ready:
                    self._ready.discard(volume)
                    self.on_gone(volume)
        for volume in present - self._ready:
            signature = volume_signature(volume.path)
            if signature is None:
                continue
            previous = self._settling.get(volume)
            if previous is None or previous[0] != signature:
                self._settling[volume] = (signature, now)
            elif now - previous[1] >= self.stable_s:
                del self._settling[volume]
                self._ready.add(volume)
                self.on_ready(volume)

    def _loop(self) -> None:
        last_full = 0.0
        while not self._stop.is_set():
            try:
                self.scan_once()
            except Exception:
                logger.exception("Dock scan failed; retrying.")
            # Settling volumes are re-checked often; otherwise wait for inotify or the rescan interval.
            timeout = min(self.stable_s / 4, 0.25) if self._settling else max(0.0, self.rescan_s - (
                time.monotonic() - last_full))
            if self._wake.wait(timeout=timeout):
                self._wake.clear()
            if not self._settling:
                last_full = time.monotonic()

    def start(self) -> None:
        self._observer.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self._observer.stop()
        self._observer.join(timeout=10)
