"""Issue 13, item 8: attack the local store's files as the service account, and see each attack fail or be named.

The attacker is a real second process: as root, the tests run it as `nobody` (uid 65534) over a store that
`nobody` owns (the embedded default: the service owns its store) or that another account owns (the
separate-owner deployment with the store writer); for the immutable flag, as root without CAP_LINUX_IMMUTABLE.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage import HashMismatch, LocalStore, ObjectLocked, ObjectMissing, RetentionRefused, manifest_key, object_key
from storage.backends.local_tree import remove_tree
from storage.errors import SealBroken
from storage.hardening import CAP_LINUX_IMMUTABLE, has_capability, is_immutable, set_immutable
from storage.writer import init_store, serve_in_thread
from tests.conftest import _missing
from tests.helpers.retention import wait_past

REPO = Path(__file__).resolve().parents[2]
SERVICE_UID = 65534
UNTIL = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
ROOT = os.geteuid() == 0


@pytest.fixture
def work() -> Iterator[Path]:
    """A folder every account can enter (pytest's own tmp folder is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="worm-attack-"))
    path.chmod(0o755)
    yield path
    for child in path.iterdir():
        if child.is_dir():
            remove_tree(child)
    shutil.rmtree(path)


def _interpreter(uid: int | None) -> str:
    """A Python of this version that *uid* may run (this one may sit in root's home)."""
    if uid is None or not ROOT:
        return sys.executable
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        try:
            if subprocess.run([candidate, "-c", "pass"], user=uid, group=uid, capture_output=True,
                              check=False).returncode == 0:
                return candidate
        except OSError:
            continue
    _missing(f"a {version} that uid {uid} may run (the attacker must be a second account)")


def _attack(code: str, *, uid: int | None = None, drop_immutable: bool = False) -> str:
    """Run *code* (Python; `p` is pathlib.Path, `os` is os) as the attacker; its printed outcome is returned:
    `done` when every step succeeded, else the name and message of the first error."""
    script = ("import os, sys\nfrom pathlib import Path as p\ntry:\n" +
              "".join(f"    {line}\n" for line in code.strip().splitlines()) +
              "    print('done')\nexcept Exception as exc:\n    print(f'{type(exc).__name__}: {exc}')\n")
    args = [_interpreter(uid), "-c", script]
    if drop_immutable:
        if shutil.which("capsh") is None:
            _missing("capsh (libcap2-bin), to drop CAP_LINUX_IMMUTABLE from the attacker")
        args = ["capsh", "--drop=cap_linux_immutable", "--", "-c", " ".join(_quote(a) for a in args)]
    owner = uid if uid is not None and ROOT else None  # None: as this process (subprocess's own default)
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=REPO, check=False,
                          env={"PATH": os.environ["PATH"],
                               "PYTHONPATH": os.pathsep.join([str(REPO), sysconfig.get_paths()["purelib"]])},
                          user=owner, group=owner)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\"'\"'") + "'"


def _as_service(code: str) -> str:
    return _attack(code, uid=SERVICE_UID if ROOT else None)


def _put(store: LocalStore, folder: Path, data: bytes, until: datetime = UNTIL) -> str:
    path = folder / f"{hashlib.sha256(data).hexdigest()[:8]}.bin"
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    store.put_file(path, sha256=sha, size_bytes=len(data), retain_until=until)
    return sha


def _service_store(work: Path) -> LocalStore:
    """The embedded default: the service account owns its store (as root: chown the whole tree to `nobody`)."""
    store = LocalStore(work / "worm")
    return store


def _give_to_service(root: Path) -> None:
    if ROOT:
        for dirpath, dirs, files in os.walk(root):
            for name in (*dirs, *files):
                os.lchown(os.path.join(dirpath, name), SERVICE_UID, SERVICE_UID)
        os.chown(root, SERVICE_UID, SERVICE_UID)


def test_everything_the_store_writes_is_sealed(work):
    store = _service_store(work)
    sha = _put(store, work, b"sealed evidence")
    store.put_manifest(sha, 1, b'{"m": 1}', retain_until=UNTIL)
    store.put_record("custody/anchor-1.json", b"{}", retain_until=UNTIL)
    root = store.root
    for path in (root / "objects" / object_key(sha), root / "retention" / f"{object_key(sha)}.json",
                 root / manifest_key(sha, 1), root / "records" / "custody" / "anchor-1.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o444, path
    for area in ("objects", "retention", "manifests", "records"):
        for dirpath, _dirs, _files in os.walk(root / area):
            assert stat.S_IMODE(os.stat(dirpath).st_mode) == 0o555, dirpath
    assert stat.S_IMODE(root.stat().st_mode) == 0o555
    assert store.audit() == []
    # retention still grows, holds still work, and disposal after retain-until still deletes
    assert store.extend_retention(sha, UNTIL + timedelta(days=1)).retain_until == UNTIL + timedelta(days=1)
    with pytest.raises(RetentionRefused, match="can only be extended"):
        store.extend_retention(sha, UNTIL)
    assert store.set_legal_hold(sha, True).legal_hold
    with pytest.raises(ObjectLocked, match="under legal hold"):
        store.delete(sha, now=UNTIL + timedelta(days=400))
    store.set_legal_hold(sha, False)
    store.delete(sha, now=UNTIL + timedelta(days=400))
    assert not store.exists(sha) and store.audit() == []
    for area in ("objects", "retention"):
        for dirpath, _dirs, _files in os.walk(root / area):
            assert stat.S_IMODE(os.stat(dirpath).st_mode) == 0o555, dirpath


def test_service_account_attacks_on_its_own_store_fail_or_are_named(work):
    store = _service_store(work)
    shas = [_put(store, work, f"recording {n}".encode()) for n in range(6)]
    store.put_manifest(shas[0], 1, b'{"signed": "manifest"}', retain_until=UNTIL)
    _give_to_service(store.root)
    obj = {sha: store.root / "objects" / object_key(sha) for sha in shas}
    rec = {sha: store.root / "retention" / f"{object_key(sha)}.json" for sha in shas}

    # writing, deleting or renaming without first unsealing fails
    assert _as_service(f"p({str(obj[shas[0]])!r}).write_bytes(b'forged')").startswith("PermissionError")
    assert _as_service(f"p({str(obj[shas[0]])!r}).unlink()").startswith("PermissionError")
    assert _as_service(f"p({str(obj[shas[0]])!r}).rename({str(obj[shas[0]])!r} + '.x')").startswith("PermissionError")
    assert _as_service(f"p({str(rec[shas[0]])!r}).write_text('{{}}')").startswith("PermissionError")
    assert store.verify(shas[0]) == shas[0]

    # chmod u+w + rewrite of an object: verify names it by its hash and key
    assert _as_service(f"f = p({str(obj[shas[1]])!r}); f.chmod(0o644); f.write_bytes(b'forged bytes')") == "done"
    with pytest.raises(HashMismatch) as mismatch:
        store.verify(shas[1])
    assert mismatch.value.path == object_key(shas[1])
    assert mismatch.value.found == hashlib.sha256(b"forged bytes").hexdigest()

    # chmod of the folder + rm of an object: head names the missing file and the record left behind
    assert _as_service(f"d = p({str(obj[shas[2]].parent)!r}); d.chmod(0o755); p({str(obj[shas[2]])!r}).unlink()") \
        == "done"
    with pytest.raises(ObjectMissing) as missing:
        store.head(shas[2])
    assert str(obj[shas[2]]) in str(missing.value) and str(rec[shas[2]]) in str(missing.value)

    # rename of an object aside: the same
    assert _as_service(f"d = p({str(obj[shas[3]].parent)!r}); d.chmod(0o755); "
                       f"p({str(obj[shas[3]])!r}).rename({str(obj[shas[3]])!r} + '.bak')") == "done"
    with pytest.raises(ObjectMissing, match="is missing; its retention record"):
        store.head(shas[3])
    assert any(f"{obj[shas[3]]}.bak is not where the store puts an object" in p for p in store.audit())

    # a retention record made writable and rewritten to an earlier date: head lists the file, verify refuses
    early = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert _as_service(f"f = p({str(rec[shas[4]])!r}); f.chmod(0o644); "
                       f"f.write_text('{{\"retain_until\": \"{early}\", \"legal_hold\": false}}')") == "done"
    head = store.head(shas[4])
    assert head.seal_problems == (f"{rec[shas[4]]} is writable (mode 0644; the store seals it 0444)",)
    with pytest.raises(SealBroken) as broken:
        store.verify(shas[4])
    assert str(rec[shas[4]]) in str(broken.value)
    #   ... and sealed again by the attacker: the catalogue's check (catalog.verification.check_lock) names it
    _as_service(f"p({str(rec[shas[4]])!r}).chmod(0o444)")
    from catalog.models import Recording
    from catalog.verification import check_lock

    row = Recording(id=7, original_name="clip.mp4", sha256=shas[4], retain_until=UNTIL, retention_rule="routine",
                    size_bytes=1, media_kind="video", station_code="s", time_source="filename", integrity_status="ok",
                    state="archived")
    problems = check_lock(row, store.head(shas[4]))
    assert problems and object_key(shas[4]) in str(problems[0]) and early[:10] in str(problems[0])

    # a retention record removed: head names it
    assert _as_service(f"d = p({str(rec[shas[5]].parent)!r}); d.chmod(0o755); p({str(rec[shas[5]])!r}).unlink()") \
        == "done"
    with pytest.raises(SealBroken, match=f"{rec[shas[5]]} \\(the retention record of .*\\) is missing"):
        store.head(shas[5])

    # a manifest made writable and rewritten: verify names the file (its signature no longer verifies either:
    # tests/catalog/test_verification.py::test_a_forged_manifest_signature_is_named)
    manifest = store.root / manifest_key(shas[0], 1)
    assert _as_service(f"f = p({str(manifest)!r}); f.chmod(0o644); f.write_bytes(b'{{}}')") == "done"
    with pytest.raises(SealBroken, match=f"{manifest} is writable"):
        store.verify(shas[0])
    # the whole-store audit lists every folder the attacker reopened
    audit = store.audit()
    assert any(f"{obj[shas[2]].parent} is writable (mode 0755" in p for p in audit), audit


def test_separate_owner_the_service_writes_only_through_the_store_writer(work):
    if not ROOT:
        _missing("two OS accounts (the store owner and the service): running as root, to switch to uid 65534")
    root = work / "worm"
    init_store(root, immutable=False)
    server, thread = serve_in_thread(root, allow_uids={SERVICE_UID}, socket_gid=SERVICE_UID)
    try:
        (work / "staging").mkdir()
        os.chown(work / "staging", SERVICE_UID, SERVICE_UID)
        soon = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
        out = _as_service(f"""
import hashlib, json
from datetime import datetime, timedelta
from storage import LocalStore
store = LocalStore(p({str(root)!r}))
assert store._client is not None, 'not in writer mode'
results = {{}}
for n, until in ((1, {UNTIL.isoformat()!r}), (2, {soon!r})):
    f = p({str(work / 'staging')!r}) / f'clip{{n}}.mp4'
    f.write_bytes(f'clip {{n}}'.encode())
    sha = hashlib.sha256(f.read_bytes()).hexdigest()
    results[n] = sha
    store.put_file(f, sha256=sha, size_bytes=f.stat().st_size, retain_until=datetime.fromisoformat(until), consume=True)
store.put_manifest(results[1], 1, b'{{"m": 1}}', retain_until=datetime.fromisoformat({UNTIL.isoformat()!r}))
store.extend_retention(results[1], datetime.fromisoformat({(UNTIL + timedelta(days=2)).isoformat()!r}))
for step in ('shorten', 'delete', 'overwrite manifest'):
    try:
        if step == 'shorten':
            store.extend_retention(results[1], datetime.fromisoformat({UNTIL.isoformat()!r}))
        elif step == 'delete':
            store.delete(results[1], now=datetime.fromisoformat('2999-01-01T00:00:00+00:00'))
        else:
            store.put_manifest(results[1], 1, b'{{"m": "forged"}}',
                               retain_until=datetime.fromisoformat({UNTIL.isoformat()!r}))
        results[step] = 'accepted'
    except Exception as exc:
        results[step] = f'{{type(exc).__name__}}: {{exc}}'
print(json.dumps(results))
""")
        results = json.loads(out.splitlines()[0])
        one, two = results["1"], results["2"]
        store = LocalStore(root)
        assert store.head(one).retain_until == UNTIL + timedelta(days=2)
        assert results["shorten"].startswith("RetentionRefused: retention of")
        assert "can only be extended" in results["shorten"]
        # the writer's clock decides, not the `now` the caller claims
        assert results["delete"].startswith(
            f"ObjectLocked: cannot delete object {object_key(one)!r}: it is retained until")
        assert results["overwrite manifest"].startswith("ObjectExists")
        assert store.get_manifest(one, 1) == b'{"m": 1}'
        # the service account can neither unseal nor change any file or folder of the store
        obj = root / "objects" / object_key(one)
        for attack in (f"p({str(obj)!r}).chmod(0o644)", f"p({str(obj)!r}).write_bytes(b'x')",
                       f"p({str(obj)!r}).unlink()", f"p({str(obj)!r}).rename({str(obj)!r} + '.x')",
                       f"p({str(obj.parent)!r}).chmod(0o755)",
                       f"p({str(root / 'retention' / object_key(one))!r} + '.json').write_text('{{}}')",
                       f"p({str(root / 'STORE.json')!r}).unlink()"):
            assert _as_service(attack).startswith("PermissionError"), attack
        assert store.verify(one) == one and store.audit() == []
        # another uid is not served at all
        refused = _attack(f"""
from storage.writer import WriterClient
WriterClient(p({str(root / 'writer.sock')!r})).delete_derived({one!r})
""", uid=None)
        assert refused == f"PermissionError: uid {os.geteuid()} may not write to this store"
        # disposal after retain-until still works through the writer (waits on the writer's clock, ~3 s)
        deadline = time.monotonic() + 30
        while True:
            outcome = _as_service(f"from storage import LocalStore\nfrom datetime import datetime, UTC\n"
                                  f"LocalStore(p({str(root)!r})).delete({two!r}, now=datetime.now(UTC))")
            if outcome == "done" or time.monotonic() > deadline:
                break
            assert outcome.startswith("ObjectLocked"), outcome
        assert outcome == "done" and not store.exists(two)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_capability_detection_reads_the_effective_set():
    with_cap = f"Name:\tx\nCapEff:\t{1 << CAP_LINUX_IMMUTABLE:016x}\n"
    assert has_capability(status=with_cap)
    assert not has_capability(status="CapEff:\t0000000000000000\n")
    assert not has_capability(status="Name:\tno caps line\n")
    assert has_capability(status="CapEff:\t000001fffeffffff\n")


def test_an_immutable_store_refuses_to_run_without_the_capability(work):
    """The fallback: without CAP_LINUX_IMMUTABLE a store marked immutable is not silently weaker."""
    root = work / "worm"
    LocalStore(root)  # a plain store, sealed by modes only
    marker = {"writer": False, "immutable": True}
    os.chmod(root, 0o755)
    (root / "STORE.json").write_text(json.dumps(marker))
    out = _attack(f"from storage import LocalStore\nLocalStore(p({str(root)!r}))", drop_immutable=ROOT,
                  uid=None)
    assert out == (f"BackendUnavailable: evidence store local:{root} is unavailable: the store is immutable "
                   "(STORE.json) but this process lacks CAP_LINUX_IMMUTABLE; run the store writer with it")


def test_immutable_flag_stops_even_root_without_the_capability(work):
    if not has_capability():
        _missing("CAP_LINUX_IMMUTABLE in this process (the chattr +i branch)")
    probe = work / "probe"
    probe.write_bytes(b"x")
    try:
        set_immutable(probe, True)
    except OSError as exc:
        _missing(f"an immutable flag on the filesystem under {work} ({exc})")
    set_immutable(probe, False)
    root = work / "worm"
    init_store(root, immutable=True)
    store = LocalStore(root, writer=False)
    sha = _put(store, work, b"immutable evidence", until=datetime.now(UTC) + timedelta(seconds=2))
    store.put_manifest(sha, 1, b"{}", retain_until=UNTIL)
    obj = root / "objects" / object_key(sha)
    rec = root / "retention" / f"{object_key(sha)}.json"
    assert is_immutable(obj) and is_immutable(rec) and is_immutable(obj.parent) and is_immutable(root)
    for attack in (f"p({str(obj)!r}).chmod(0o644)", f"p({str(obj)!r}).write_bytes(b'x')", f"p({str(obj)!r}).unlink()",
                   f"p({str(obj)!r}).rename({str(obj)!r} + '.x')", f"p({str(rec)!r}).write_text('{{}}')",
                   f"p({str(rec)!r}).unlink()", f"p({str(root / manifest_key(sha, 1))!r}).unlink()",
                   f"p({str(obj.parent)!r}).rename({str(obj.parent)!r} + '.x')",
                   f"import fcntl, struct\nfd = os.open({str(obj)!r}, os.O_RDONLY)\n"
                   "fcntl.ioctl(fd, 0x40086602, bytes(8))"):
        assert _attack(attack, drop_immutable=True).startswith("PermissionError"), attack
    assert store.verify(sha) == sha and store.audit() == []
    # retention still grows, and disposal after retain-until still works (the store holds the capability)
    store.extend_retention(sha, datetime.now(UTC) + timedelta(seconds=3))
    wait_past(store.head(sha).retain_until)
    store.delete(sha, now=datetime.now(UTC))
    assert not store.exists(sha) and is_immutable(obj.parent)
