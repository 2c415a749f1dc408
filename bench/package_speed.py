"""Evidence package export and the package's own verify.py against sha256sum of the same payload (issue 16).

Builds an archive on the embedded default (SQLite catalogue, local WORM store; no ffmpeg): N recordings of random
bytes archived as ingest leaves them (bytes in the store, `copied` event, stamp, signed manifest), linked to one
case, with an agency root that certifies the station key and the export key, so the package is fully signed.
Then, in each round, first with cold page caches (the step's input evicted before it) and then warm, times:

* export: catalog.package.export_package of the case to a new folder (in this process);
* verify: the bag's own `verify.py --trust ROOT BAG`, run with this Python (the repository's .venv);
* baselines: `sha256sum` and `openssl dgst -sha256` over the same payload files (the bag's data/recordings/*).

Every step starts after a `sync`, so no write-back of the step before is in its time; the export does not fsync
the package, so its own write-back is not in its time either (as for whoever runs `evidence export`).

Prints payload MiB/s (medians), the ratios export / sha256sum and verify / sha256sum (and against openssl) with
the target ≥ 0.8×, how many times export reads and writes each payload byte (/proc/self/io: bytes through read()
and write(), which also count the report font and the catalogue, a few MiB), and each step's disk reads per
payload byte in the cold rounds (≈ 1: the eviction worked). --profile adds one warm export under cProfile.
Everything is made under bench/out/package and removed at the end.

    .venv/bin/python bench/package_speed.py [--files 4] [--mib 512] [--rounds 3] [--quick] [--profile]
"""
from __future__ import annotations

import cProfile
import hashlib
import os
import pstats
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session

from bench._common import OUT, command_line, evict, median, timed
from catalog import (
    CustodyKind,
    Recording,
    append_event,
    ensure_station,
    ensure_station_key,
    open_catalog,
    record_stamp,
    write_manifest,
)
from catalog.cases import create_case, link_recording
from catalog.key_certs import certify_station
from catalog.key_files import read_private_key
from catalog.key_lifecycle import create_root, init_export_key
from catalog.package import PackageSigning, export_package
from catalog.replay import ROW_KEY, row_values
from catalog.types import utcnow
from catalog.users import add_user
from ingest.config import Settings
from storage import LocalStore

REPO = Path(__file__).resolve().parents[1]
STATION = "bench-station"
CASE = "BENCH-2026-00016"
CLERK = "clerk"
MIB = 2**20
METHODS = ("export", "verify.py", "sha256sum", "openssl dgst -sha256")
MODES = ("cold", "warm")
TARGET = 0.8


@dataclass(frozen=True)
class Archive:
    """What the rounds need of the archive built: where it is and the keys a package is signed with."""
    url: str
    store: LocalStore
    station_key: Ed25519PrivateKey
    export_key: Path
    root_fingerprint: str
    payload_bytes: int


@dataclass
class Tally:
    """Each step's seconds, bytes read from the disk, and (export) bytes read/written through syscalls."""
    times: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    disk: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    rchar: dict[str, list[int]] = field(default_factory=dict)  # export, by mode
    wchar: dict[str, list[int]] = field(default_factory=dict)


def _random_file(path: Path, mib: int) -> str:
    """*mib* MiB of random bytes at *path*; their SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        for _ in range(mib):
            block = os.urandom(MIB)
            digest.update(block)
            fh.write(block)
    return digest.hexdigest()


def _archive_recording(session: Session, store: LocalStore, work: Path, n: int, mib: int,
                       key: Ed25519PrivateKey) -> Recording:
    """Recording *n* as ingest leaves it (as tests/helpers/recordings.archive_recording, with *mib* MiB): bytes in
    the store, its row, its `copied` event with the whole row, its stamp and its manifest signed with *key*."""
    path = work / f"{n}.mp4"
    sha = _random_file(path, mib)
    size = mib * MIB
    stored = store.put_file(path, sha256=sha, size_bytes=size, retain_until=utcnow() + timedelta(days=2),
                            consume=True)
    actor = f"station:{STATION}"
    recording = Recording(sha256=sha, size_bytes=size, media_kind="video", original_name=f"clip{n}.mp4",
                          station_code=STATION, captured_start=datetime(2026, 11, 20, tzinfo=UTC),
                          captured_end=datetime(2026, 11, 20, 0, 1, tzinfo=UTC), time_source="container",
                          integrity_status="ok", state="verified", ingested_at=utcnow(),
                          retain_until=stored.retain_until, store_name=store.name, store_key=stored.key,
                          device_serial="A123456", officer_number="010203", purpose="巡查")
    session.add(recording)
    session.flush()
    append_event(session, CustodyKind.COPIED, actor=actor, recording_id=recording.id,
                 details={"sha256": sha, "size_bytes": size, ROW_KEY: row_values(recording)})
    record_stamp(session, recording, by=actor, reason="ingest")
    write_manifest(session, store, recording, key, actor=actor)
    return recording


def _certify(session: Session, store: LocalStore, keys: Path) -> tuple[str, Path]:
    """An agency root (its key file in *keys*), the station's key and the export key certified by it, as
    docs/keys.md's administrator does it. The root's fingerprint and the export key's file."""
    root = create_root(session, store, path=keys / "root.ed25519.pem", name="基准测试执法局", by="admin",
                       now=utcnow())
    root_key = read_private_key(keys / "root.ed25519.pem")
    certify_station(session, store, root_key, STATION, by="admin", now=utcnow())
    session.commit()
    export_key = keys / "export.ed25519.pem"
    init_export_key(session, store, root_key, path=export_key, by="admin", now=utcnow())
    return root.fingerprint, export_key


def build(work: Path, files: int, mib: int) -> Archive:
    """The archive: *files* recordings of *mib* MiB in case CASE, user CLERK who may export it, the keys
    certified."""
    store = LocalStore(work / "worm")
    url = f"sqlite:///{work / 'catalog.db'}"
    (work / "keys").mkdir()
    key = Ed25519PrivateKey.generate()
    settings = Settings.defaults()
    engine = open_catalog(url)
    try:
        with Session(engine) as session:
            ensure_station(session, STATION)
            ensure_station_key(session, STATION, key, actor=f"station:{STATION}", store=store)
            recordings = [_archive_recording(session, store, work, n, mib, key) for n in range(1, files + 1)]
            add_user(session, CLERK, roles=["clerk"], by="admin")
            today = utcnow().date()
            case = create_case(session, number=CASE, title="基准测试案", case_type="penalty-general", unit="",
                               opened_on=today, by=CLERK, case_pattern=settings.case_pattern,
                               policy=settings.retention_policy, today=today)
            for recording in recordings:
                link_recording(session, case, recording, purpose="证明现场情况", by=CLERK)
            session.commit()
            root, export_key = _certify(session, store, work / "keys")
    finally:
        engine.dispose()
    return Archive(url, store, key, export_key, root, files * mib * MIB)


def export(archive: Archive, bag: Path) -> None:
    """The case's package to the new folder *bag*, as `evidence export CASE --out BAG` writes it."""
    engine = open_catalog(archive.url)
    try:
        with Session(engine) as session:
            signing = PackageSigning(station=STATION, station_key=archive.station_key,
                                     export_key_path=archive.export_key, settings=Settings.defaults())
            result = export_package(session, archive.store, out=bag, by=CLERK, now=utcnow(), reason="基准测试",
                                    signing=signing, case_number=CASE)
    finally:
        engine.dispose()
    assert result.payload_bytes == archive.payload_bytes, (result.payload_bytes, archive.payload_bytes)


def _python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def _proc_io() -> dict[str, int]:
    """This process's I/O counters (Linux /proc/self/io: rchar, wchar, read_bytes, …); empty elsewhere."""
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return {}
    return {name: int(value) for name, value in (line.split(": ") for line in text.splitlines())}


def _children_disk_reads() -> int:
    """Bytes the waited-for children read from the disk so far (ru_inblock counts 512-byte blocks)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_inblock * 512


def _remove(path: Path) -> None:
    """Remove *path* whatever the store sealed in it (read-only files and folders)."""
    if not path.exists():
        return
    for p in [path, *path.rglob("*")]:
        if not p.is_symlink():
            p.chmod(0o755 if p.is_dir() else 0o644)
    shutil.rmtree(path)


def _step(tally: Tally, method: str, mode: str, fn: Callable[[], None]) -> None:
    """Time *fn* after a sync; note its disk reads (and, for the export in this process, its syscall bytes)."""
    subprocess.run(["sync"], check=True)
    io_before, disk_before = _proc_io(), _children_disk_reads()
    seconds = timed(fn)
    io_after, disk_after = _proc_io(), _children_disk_reads()
    tally.times.setdefault((method, mode), []).append(seconds)
    if method != "export":
        tally.disk.setdefault((method, mode), []).append(disk_after - disk_before)
    elif io_before:
        tally.disk.setdefault((method, mode), []).append(io_after["read_bytes"] - io_before["read_bytes"])
        tally.rchar.setdefault(mode, []).append(io_after["rchar"] - io_before["rchar"])
        tally.wchar.setdefault(mode, []).append(io_after["wchar"] - io_before["wchar"])


def _checks(archive: Archive, bag: Path) -> dict[str, list[str]]:
    """The command lines that read *bag* after its export: its verify.py and the two baselines."""
    payload = [str(p) for p in sorted((bag / "data" / "recordings").iterdir())]
    return {"verify.py": [_python(), str(bag / "verify.py"), "--trust", archive.root_fingerprint, str(bag)],
            "sha256sum": ["sha256sum", *payload], "openssl dgst -sha256": ["openssl", "dgst", "-sha256", *payload]}


def one_round(archive: Archive, bags: Path, tally: Tally, number: int) -> None:
    """Each method once cold, then each once warm; each export to a new bag the steps after it read."""
    for mode in MODES:
        bag = bags / f"round{number}-{mode}"
        _remove(bags)
        bags.mkdir()
        if mode == "cold":
            evict(archive.store.root)
        _step(tally, "export", mode, partial(export, archive, bag))
        for method, command in _checks(archive, bag).items():
            if mode == "cold":
                evict(bag)
            _step(tally, method, mode, partial(_run, *command))


def _rate(archive: Archive, seconds: float) -> float:
    return archive.payload_bytes / seconds / MIB


def report(archive: Archive, tally: Tally, rounds: int) -> None:
    """The medians, the ratios against the target, and the bytes read per payload byte."""
    print("                        " + "".join(f"{m + ' MiB/s':>12s}" for m in MODES) + "   runs (MiB/s)")
    for method in METHODS:
        rates = [_rate(archive, median(tally.times[(method, mode)])) for mode in MODES]
        runs = "; ".join(", ".join(f"{_rate(archive, t):.0f}" for t in tally.times[(method, mode)]) for mode in MODES)
        print(f"  {method:22s}" + "".join(f"{r:12,.0f}" for r in rates) + f"   {runs}")
    print(f"ratios, median of {rounds} (target ≥ {TARGET}×):")
    for method in ("export", "verify.py"):
        for baseline in ("sha256sum", "openssl dgst -sha256"):
            for mode in MODES:
                ratio = median(tally.times[(baseline, mode)]) / median(tally.times[(method, mode)])
                verdict = "meets" if ratio >= TARGET else "BELOW"
                print(f"  {method} / {baseline}, {mode}: {ratio:.2f}×  {verdict}")
    if tally.rchar:
        per = {mode: median([float(v) for v in tally.rchar[mode]]) / archive.payload_bytes for mode in MODES}
        wrote = median([float(v) for v in tally.wchar["warm"]]) / archive.payload_bytes
        print(f"export reads each payload byte {per['cold']:.2f} times cold, {per['warm']:.2f} times warm (bytes "
              f"through read() / payload bytes; 1: one read pass), and writes it {wrote:.2f} times")
    disk = ", ".join(f"{m} {median([float(v) for v in tally.disk[(m, 'cold')]]) / archive.payload_bytes:.2f}"
                     for m in METHODS if (m, "cold") in tally.disk)
    print(f"bytes read from the disk per payload byte, cold rounds (≈ 1: the eviction worked): {disk}")


#: The export's steps (and what they spend their time in) in a profile; fpdf's and fontTools' own are left out.
STEPS = (r"catalog/package/|bagit\.py:\d+\((make_bag|make_manifests|save|validate|_validate_entries)\)|"
         r"hashing\.py:\d+\(hash_stream|court_report\.py:\d+\(write_reports|premis\.py:\d+\(write_premis|"
         r"_hashlib|BufferedWriter|BufferedReader")


def profile_export(archive: Archive, bags: Path) -> None:
    """One warm export under cProfile: its steps by cumulative time (and the hashing, reads and writes)."""
    _remove(bags)
    bags.mkdir()
    profiler = cProfile.Profile()
    profiler.runcall(export, archive, bags / "profiled")
    print("one warm export under cProfile, its steps by cumulative time:")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(STEPS, 30)


def main() -> None:
    parser = command_line(__doc__)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--mib", type=int, default=512, help="MiB per recording")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 4 × 64 MiB")
    parser.add_argument("--profile", action="store_true", help="also profile one warm export")
    args = parser.parse_args()
    files, mib = (4, 64) if args.quick else (args.files, args.mib)
    work = OUT / "package"
    _remove(work)
    work.mkdir(parents=True)
    load = os.getloadavg()[0]
    try:
        archive = build(work, files, mib)
        tally = Tally()
        for number in range(1, args.rounds + 1):
            one_round(archive, work / "bags", tally, number)
        print(f"evidence package export and verify.py vs sha256sum: {files} recordings × {mib} MiB "
              f"({files * mib:,} MiB payload), {args.rounds} interleaved rounds, cold and warm page cache")
        print(f"{os.cpu_count()} cores; load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end "
              "(other jobs may share the machine)")
        report(archive, tally, args.rounds)
        if args.profile:
            profile_export(archive, work / "bags")
    finally:
        _remove(work)


if __name__ == "__main__":
    main()
