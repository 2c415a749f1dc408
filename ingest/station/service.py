"""`evidence station watch`: notice docked recorders and ingest them unattended, several at once.

Each stable new volume goes to a bounded pool of ingest threads (one device's slowness never blocks
another: each has its own thread, and no catalogue transaction is held across a long copy). After ingest,
devices whose profile allows it are cleared file by file as their archived copies are verified (a sweep
that also waits for queue workers). Progress is kept per device and written to a status file
(`evidence station status`) for a kiosk screen. SIGTERM stops between files; nothing done is lost and the
next start resumes.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from catalog import CatalogUnavailable, load_or_create_key, open_catalog
from catalog.docks import close_open_sessions
from catalog.media_work import media_backlog
from catalog.types import utcnow
from device_profiles import DeviceProfile, ProfileNotFound, is_match, load_profiles, recognise
from device_profiles.matching import list_top_paths
from ingest import known_files
from ingest.anchoring import anchor_chain
from ingest.config import Settings
from ingest.errors import first_line
from ingest.journal import held as journal_held
from ingest.journal import journaled_serials
from ingest.media_work import render_backlog
from ingest.pipeline import IngestOptions, IngestReport, Progress, busy_serials, catalogue_journal, ingest_folder
from ingest.queue.actors import Actors
from ingest.queue.connection import open_queue
from ingest.queue.relay import RelayResult, relay_once
from ingest.services import open_store
from ingest.station.clearing import clear_device
from ingest.station.dock_watcher import DockWatcher, Volume
from ingest.station.health import StationMetrics, probe_broker
from ingest.station.staging_sweep import sweep_staging, sweep_store_scratch
from ingest.station.status import BUSY, DeviceState, DeviceStatus, read_status
from ingest.station.status_server import StatusServer
from ingest.station.usb_identity import usb_identity

__all__ = ["DeviceState", "DeviceStatus", "StationService", "read_status"]

logger = logging.getLogger(__name__)

#: Seconds between passes over the media backlog when no dock wakes the render thread: work a store or catalogue
#: outage deferred is tried again this often.
RENDER_RETRY_S = 300.0
#: Longest wait at stop for the render thread to finish the recording it is on (it stops between recordings).
RENDER_STOP_S = 60.0
#: The most recordings counted for the evidence_media_work_pending gauge after a render pass.
MEDIA_PENDING_COUNTED = 1000


class StationService:
    def __init__(self, settings: Settings, *, on_change: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.settings = settings
        self.on_change = on_change
        self.devices: dict[str, DeviceStatus] = {}
        self.awaiting_clear: dict[str, tuple[Path, DeviceProfile, str]] = {}
        self.awaiting_catalog: dict[str, tuple[Volume, DeviceProfile, float]] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.profiles = load_profiles((settings.profiles_dir,) if settings.profiles_dir else ())
        self._dirty = True
        self.endpoint: StatusServer | None = None
        self._last_journal_sweep = 0.0
        self.metrics = StationMetrics(settings.station, broker_configured=bool(settings.broker_url))
        self._last_beat = 0.0
        self._last_alarms: list[dict[str, Any]] = []
        self._replaying: set[str] = set()
        self.endpoint_address: tuple[str, int] | None = None
        # Anchoring the custody chain head: after each dock session, every EVIDENCE_ANCHOR_INTERVAL_S, at stop.
        self._anchor_wake = threading.Event()
        self._anchor_reasons: list[str] = []
        self._anchor_stopping = False
        # Handing the outbox to the broker: woken after each dock commit, and every EVIDENCE_OUTBOX_RELAY_S.
        self._relay_wake = threading.Event()
        self.last_relay: RelayResult | None = None
        # The media backlog (embedded: no derive workers): at start, after each dock, every RENDER_RETRY_S.
        self._render_wake = threading.Event()
        self._render_thread: threading.Thread | None = None

    # -- status --------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"station": self.settings.station, "updated_at": datetime.now(UTC).isoformat(),
                    "heartbeat_at": datetime.now(UTC).isoformat(), "pid": os.getpid(),
                    "running": not self.stop.is_set(),
                    "endpoint": (f"http://{self.endpoint_address[0]}:{self.endpoint_address[1]}"
                                 if self.endpoint_address else None),
                    "alarms": self.metrics.alarms(),
                    "partial_copies": self.metrics.partial_copies(),
                    "devices": [d.as_json() for d in self.devices.values()]}

    def _changed(self) -> None:
        self._dirty = True

    def _write_status(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        data = self.snapshot()
        path = self.settings.status_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, path)
        if self.on_change is not None:
            self.on_change(data)

    # -- docking -------------------------------------------------------------------------------------
    def _is_volume(self, path: Path) -> bool:
        present = list_top_paths(path)
        return any(is_match(p, present) for p in self.profiles.values())

    def _docked(self, volume: Volume) -> None:
        key = str(volume.path)
        status = DeviceStatus(path=key, docked_at=datetime.now(UTC).isoformat())
        try:
            profile = recognise(volume.path, self.profiles)
        except ProfileNotFound as exc:
            status.state, status.message = DeviceState.UNKNOWN, str(exc)
            logger.warning("Unknown volume %r: not ingested.", key)
            with self.lock:
                self.devices[key] = status
            self._changed()
            return
        status.profile, status.state = profile.name, DeviceState.QUEUED
        status.usb = usb_identity(volume.path)
        with self.lock:
            self.devices[key] = status
        self._changed()
        logger.warning("Docked %r (%s).", key, profile.name)
        self.pool.submit(self._ingest, volume, profile, time.monotonic())

    def _undocked(self, volume: Volume) -> None:
        key = str(volume.path)
        with self.lock:
            status = self.devices.get(key)
            if status is not None and status.state not in BUSY:
                status.state = DeviceState.UNDOCKED
            self.awaiting_clear.pop(key, None)
        self._changed()
        logger.warning("Undocked %r.", key)

    def _ingest(self, volume: Volume, profile: DeviceProfile, docked_at: float) -> None:
        key = str(volume.path)
        status = self.devices[key]
        status.state = DeviceState.INGESTING
        self._changed()
        options = IngestOptions(profile=profile.name, actor=f"station:{self.settings.station}",
                                defer_archive=bool(self.settings.broker_url), should_stop=self.stop.is_set,
                                usb=status.usb)
        try:
            report = ingest_folder(volume.path, settings=self.settings, engine=self.engine, store=self.store,
                                   options=options, progress=self._progress(status, docked_at),
                                   after_commit=self._relay_soon if self.settings.broker_url else None)
        except CatalogUnavailable as exc:
            # Copies are in staging and journaled; try again (from the journal if the device leaves).
            self.metrics.failure("catalogue")
            status.state, status.message = DeviceState.WAITING_CATALOG, str(exc)
            status.device_serial = getattr(exc, "device_serial", None) or status.device_serial
            with self.lock:
                self.awaiting_catalog[key] = (volume, profile, time.monotonic())
            self._changed()
            return
        except Exception as exc:
            logger.exception("Ingest of %r failed.", key)
            self.metrics.failure("station")
            status.state, status.message = DeviceState.FAILED, str(exc)
            self._changed()
            return
        self._ingested(volume, profile, status, report)

    def _progress(self, status: DeviceStatus, docked_at: float) -> Progress:
        """The pipeline's progress callback for one device: its counters, rate and ETA in the status."""
        started = time.monotonic()

        def progress(event: str, value: int) -> None:
            if event == "files":
                status.files_total = value
            elif event == "bytes":
                status.bytes_total = value
            elif event == "advance":
                if status.first_byte_after_s is None and value:
                    status.first_byte_after_s = round(time.monotonic() - docked_at, 3)
                self.metrics.bytes_copied(value)
                status.bytes_done += value
                elapsed = max(time.monotonic() - started, 1e-6)
                status.rate_bytes_s = status.bytes_done / elapsed
                left = max(status.bytes_total - status.bytes_done, 0)
                status.eta_s = round(left / status.rate_bytes_s, 1) if status.rate_bytes_s else None
            self._changed()

        return progress

    def _ingested(self, volume: Volume, profile: DeviceProfile, status: DeviceStatus, report: IngestReport) -> None:
        status.device_serial, status.dock_session = report.device_serial, report.dock_session_id
        status.new, status.known = report.new_count, report.known_count
        status.skipped = len(report.skipped)
        status.errors = report.error_lines()
        for error in report.errors:
            self.metrics.failure(str(error.get("stage") or "unknown"))
        status.discarded = report.discarded_lines()
        status.finished_at = datetime.now(UTC).isoformat()
        status.state = DeviceState.DONE
        if self.settings.clear_devices == "profile" and profile.clear_after_archive:
            status.state = DeviceState.WAITING_ARCHIVE
            with self.lock:
                self.awaiting_clear[status.path] = (volume.path, profile, report.device_serial)
        self._changed()
        self._anchor_soon(f"dock session {report.dock_session_id}")
        if report.new_count:
            self._render_wake.set()
        logger.warning("Ingested %r: %d new, %d known, %d skipped, %d error(s).", status.path, status.new,
                       status.known, status.skipped, len(status.errors))

    def _retry_catalogue(self) -> None:
        now = time.monotonic()
        if now - self._last_journal_sweep < self.settings.rescan_s:
            return
        self._last_journal_sweep = now
        with self.lock:
            due = dict(self.awaiting_catalog)
            self.awaiting_catalog.clear()
            busy = {d.device_serial for d in self.devices.values()
                    if d.state in (DeviceState.QUEUED, DeviceState.INGESTING) and d.device_serial} | busy_serials()
        docked_serials = set()
        for key, (volume, profile, _) in due.items():
            if volume.path.is_dir():  # still docked: ingest again, the journal spares re-reading it
                docked_serials.add(self.devices[key].device_serial)
                self.devices[key].bytes_done = 0
                self.pool.submit(self._ingest, volume, profile, time.monotonic())
        # Journals of devices no longer docked (or left by an earlier run): catalogue from staging alone.
        for serial in journaled_serials(self.settings.staging_dir):
            if serial in busy or serial in docked_serials or serial in self._replaying:
                continue
            if journal_held(self.settings.locks_dir, serial):
                continue  # another process (a one-shot `evidence ingest`) is still ingesting that device
            self._replaying.add(serial)
            self.pool.submit(self._replay, serial)

    def _replay(self, serial: str) -> None:
        try:
            report = catalogue_journal(serial, settings=self.settings, engine=self.engine, store=self.store,
                                       after_commit=self._relay_soon if self.settings.broker_url else None)
        except CatalogUnavailable:
            return  # still down: the next sweep tries again
        except Exception:
            logger.exception("Cataloguing the journal of %r failed.", serial)
            return
        finally:
            self._replaying.discard(serial)
        if report is None:
            return
        self._anchor_soon(f"dock session {report.dock_session_id} (catalogued from the journal)")
        with self.lock:
            for status in self.devices.values():
                if status.device_serial == serial and status.state in (DeviceState.WAITING_CATALOG,
                                                                       DeviceState.UNDOCKED):
                    status.state = DeviceState.DONE
                    status.new = report.new_count
                    status.dock_session = report.dock_session_id
                    status.message = "catalogued from the staging journal after the device left"
        self._changed()
        logger.warning("Catalogued %d journaled recording(s) of device %r.", len(report.recordings), serial)

    def _sweep_staging_loop(self) -> None:
        """At start and every EVIDENCE_STAGING_SWEEP_S, on a thread of its own (asking the store about each copy
        takes time): remove what killed writes left in the store's scratch, and staged copies nothing needs any more
        (ingest.station.staging_sweep has the rules)."""
        while True:
            self._sweep_staging()
            if self.stop.wait(self.settings.staging_sweep_s):
                return

    def _sweep_staging(self) -> None:
        sweep_store_scratch(self.store, older_than_s=self.settings.store_scratch_age_s)
        try:
            result = sweep_staging(self.engine, self.store, self.settings.staging_dir, station=self.settings.station,
                                   protect=set())
        except OperationalError as exc:
            logger.warning("Staging sweep skipped: the catalogue is unreachable (%s).",
                           first_line(exc, 200))
            return
        except Exception:
            logger.exception("Staging sweep failed; will retry.")
            return
        if result.removed:
            logger.warning("Staging sweep removed %d copies nothing needs (%d bytes).", len(result.removed),
                           result.bytes_removed)

    def _render_loop(self) -> None:
        """Without a broker nothing else renders: the media backlog (thumbnails, proxies, decode checks of archived
        recordings, `ingest.media_work`) at start, after each dock with new recordings, and every RENDER_RETRY_S (what
        a store outage deferred), as this EVIDENCE_HOME's one renderer; it stops between recordings when the station
        stops."""
        by = f"station:{self.settings.station}"
        while not self.stop.is_set():
            self._render_wake.clear()
            try:
                done = render_backlog(self.settings, self.engine, self.store, by=by, should_stop=self.stop.is_set)
                with Session(self.engine) as session:
                    pending = len(media_backlog(session, limit=MEDIA_PENDING_COUNTED))
            except Exception:
                logger.exception("Rendering the media backlog failed; will retry.")
            else:
                self.metrics.media_work(pending=pending, failed=done.failed if done is not None else 0)
                if done is not None and (done.done or done.failed):
                    logger.warning("Media backlog: %s.", done.summary())
                    self._anchor_soon("media work")
            if self.stop.is_set():  # (a wake set at stop may have been cleared above)
                return
            self._render_wake.wait(RENDER_RETRY_S)

    def _sweep_clearing(self) -> None:
        with self.lock:
            waiting = list(self.awaiting_clear.items())
        for key, (path, profile, serial) in waiting:
            if not path.is_dir():
                with self.lock:
                    self.awaiting_clear.pop(key, None)
                continue
            try:
                result = clear_device(self.engine, self.store, path, profile, device_serial=serial,
                                      actor=f"station:{self.settings.station}")
            except Exception:
                logger.exception("Clearing %r failed; will retry.", key)
                continue
            if result.cleared:  # whatever those paths hold next is a new file
                try:
                    known_files.forget_paths(self.settings.home, serial, result.cleared)
                except OSError as exc:
                    logger.error("Cleared files of %r stay in the record of known files: %s", serial, exc)
            status = self.devices[key]
            status.cleared += len(result.cleared)
            status.waiting_clear = result.waiting
            if result.waiting == 0:
                status.state = DeviceState.DONE
                with self.lock:
                    self.awaiting_clear.pop(key, None)
            self._changed()

    def _start_endpoint(self, key: Any) -> StatusServer | None:
        if self.settings.status_addr is None:
            return None
        from ingest.station.tagging import tag_dock_session

        def tag(**kwargs: Any) -> list[dict[str, Any]]:
            return tag_dock_session(self.engine, self.store, key, case_pattern=self.settings.case_pattern,
                                    policy=self.settings.retention_policy, **kwargs)

        host, port = self.settings.status_addr
        try:
            server = StatusServer(host, port, status=self.snapshot, tag=tag, metrics=self.metrics.render)
        except OSError as exc:  # the kiosk endpoint is a convenience: the station runs without it
            logger.error("Status endpoint %s:%d not started: %s", host, port, exc)
            return None
        server.start()
        with self.lock:
            self.endpoint_address = server.address
        logger.warning("Status endpoint on http://%s:%d/status", *server.address)
        return server

    # -- queue messages ------------------------------------------------------------------------------
    def _relay_soon(self, _ids: list[int]) -> None:
        self._relay_wake.set()

    def _relay_loop(self) -> None:
        """Hand this station's outbox to the broker. Its own thread: a broker that is away or slow never holds up
        copying, cataloguing or the status; the messages wait in the catalogue and go when it answers."""
        while not self.stop.is_set():
            try:
                self.last_relay = relay_once(self.engine, self.actors.send, station=self.settings.station)
                self.metrics.relay_result(self.last_relay.ok, self.last_relay.error, waiting=self.last_relay.waiting)
            except Exception as exc:  # noqa: BLE001 - the catalogue is away: nothing to hand over until it is back
                logger.debug("Outbox relay skipped: %s", exc)
            self._relay_wake.wait(self.settings.outbox_relay_s)
            self._relay_wake.clear()

    def _close_abandoned_sessions(self) -> None:
        """Dock sessions of this station left open by a run that was killed end now, saying so."""
        try:
            with Session(self.engine) as session:
                closed = close_open_sessions(
                    session, station=self.settings.station, now=utcnow(), actor=f"station:{self.settings.station}",
                    live=lambda serial: journal_held(self.settings.locks_dir, serial),
                    note="the station stopped (killed, crashed or lost power) or lost its catalogue before this dock "
                         "ended; what it copied is in staging and is catalogued from its journal or at the next dock "
                         "of the device")
                session.commit()
        except Exception as exc:  # noqa: BLE001 - the catalogue is away: the next start, journal or dock closes them
            logger.warning("Could not close dock sessions left open: %s", exc)
            return
        if closed:
            logger.warning("Closed %d dock session(s) left open by an earlier run as interrupted: %s", len(closed),
                           ", ".join(map(str, closed)))

    # -- custody anchors -----------------------------------------------------------------------------
    def _anchor_soon(self, reason: str) -> None:
        with self.lock:
            self._anchor_reasons.append(reason)
        self._anchor_wake.set()

    def _anchor_loop(self, key: Any) -> None:
        """Anchor the chain head at start, after dock sessions, every EVIDENCE_ANCHOR_INTERVAL_S (0: only after
        dock sessions) and once more at stop. Its own thread: a slow store never holds up docks or the status."""
        interval = self.settings.anchor_interval_s
        reason = "station start"
        while True:
            try:
                anchor_chain(self.settings, self.engine, self.store, key=key, reason=reason)
            except Exception:
                logger.exception("Anchoring the custody chain failed.")
            if self._anchor_stopping and not self._anchor_wake.is_set():
                return
            self._anchor_wake.wait(interval if interval > 0 else None)
            self._anchor_wake.clear()
            with self.lock:
                reasons, self._anchor_reasons = self._anchor_reasons, []
            reason = "; ".join(reasons) or ("station stop" if self._anchor_stopping
                                            else "hourly (EVIDENCE_ANCHOR_INTERVAL_S)")

    # -- lifecycle -----------------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> None:
        """Watch the mount roots until *stop* (or self.stop) is set; stop between files, anchor once more, and
        write the last status."""
        if stop is not None:
            self.stop = stop
        settings = self.settings
        engine = _open_catalogue(settings)
        try:
            self.engine = engine
            self.store = open_store(settings, check=False)  # `station watch` checked the bucket at start
            key = load_or_create_key(settings.station_key_path)
            with open_queue(settings, engine=engine, store=self.store, key=key) as queue:
                self.actors: Actors = queue.actors
                self._serve(key)
        finally:
            engine.dispose()

    def _serve(self, key: Any) -> None:
        settings = self.settings
        self.pool = ThreadPoolExecutor(max_workers=settings.station_workers, thread_name_prefix="dock")
        watcher = DockWatcher(list(settings.mount_roots), is_volume=self._is_volume, on_ready=self._docked,
                              on_gone=self._undocked, stable_s=settings.mount_stable_s, rescan_s=settings.rescan_s)
        self._close_abandoned_sessions()
        self._write_status()  # the status file exists (and says running) from the start
        watcher.start()
        anchoring, relaying = self._start_background(key)
        self.endpoint = self._start_endpoint(key)
        logger.warning("Station %r watching %s.", settings.station, ", ".join(settings.mount_roots))
        try:
            while not self.stop.wait(0.25):
                self._tick()
        finally:
            self._shut_down(watcher, anchoring, relaying)

    def _start_background(self, key: Any) -> tuple[threading.Thread, threading.Thread | None]:
        """Start the anchor, relay (with a broker), staging-sweep and health threads; return the two to join."""
        settings = self.settings
        anchoring = threading.Thread(target=self._anchor_loop, args=(key,), name="anchor", daemon=True)
        anchoring.start()
        relaying = None
        if settings.broker_url:
            relaying = threading.Thread(target=self._relay_loop, name="relay", daemon=True)
            relaying.start()
        threading.Thread(target=self._sweep_staging_loop, name="staging-sweep", daemon=True).start()
        if not settings.broker_url and settings.derive != "later":
            self._render_thread = threading.Thread(target=self._render_loop, name="render", daemon=True)
            self._render_thread.start()
        threading.Thread(target=self.metrics.refresh_forever, args=(self.engine, self.stop), name="health",
                         daemon=True,
                         kwargs={"every_s": settings.rescan_s, "staged_alarm_s": settings.staged_alarm_s,
                                 "staging": settings.staging_dir, "partial_alarm_s": settings.partial_alarm_s,
                                 "terms": settings.policy_terms,
                                 "broker_probe": (lambda: probe_broker(settings)) if settings.broker_url
                                 else None}).start()
        return anchoring, relaying

    def _tick(self) -> None:
        """One turn of the main loop (every 0.25 s)."""
        self._retry_catalogue()
        self._sweep_clearing()
        self.metrics.heartbeat()
        alarms = self.metrics.alarms()
        if alarms != self._last_alarms:  # an alarm raised or cleared shows at once
            self._last_alarms, self._dirty = alarms, True
        if time.monotonic() - self._last_beat >= self.settings.status_heartbeat_s:
            self._last_beat = time.monotonic()
            self._dirty = True  # a heartbeat: the status file says the station is alive
        self._write_status()

    def _shut_down(self, watcher: DockWatcher, anchoring: threading.Thread,
                   relaying: threading.Thread | None) -> None:
        if self.endpoint is not None:
            self.endpoint.stop()
        watcher.stop()
        self._render_wake.set()  # the render thread sees the stop between recordings
        self.pool.shutdown(wait=True)  # in-flight docks stop between files
        if self._render_thread is not None:  # done with the catalogue before run() disposes of its engine
            self._render_thread.join(timeout=RENDER_STOP_S)
            if self._render_thread.is_alive():
                logger.warning("The render thread is still at work after %.0f s; stopping without it.", RENDER_STOP_S)
        self._anchor_stopping = True  # one last anchor covers the sessions that just ended
        self._anchor_wake.set()
        anchoring.join(timeout=60)
        if relaying is not None:
            self._relay_wake.set()
            relaying.join(timeout=30)
        self._sweep_clearing()
        self._dirty = True
        self._write_status()


def _open_catalogue(settings: Settings) -> Engine:
    try:
        return open_catalog(settings.database_url)
    except CatalogUnavailable as exc:
        # Start anyway: docks are copied into staging and journaled until the catalogue answers.
        logger.error("%s; the station starts and journals what it copies.", exc)
        return open_catalog(settings.database_url, run_migrations=False)
