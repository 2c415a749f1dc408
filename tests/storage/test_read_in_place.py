"""EvidenceStore.read_in_place: a media reader's path or URL to the stored original, nothing copied, read-only.

The same contract against the local WORM store and a real S3 Object Lock server (SeaweedFS); the separate-owner
deployment's service account (a real second account when the tests run as root) reads in place too.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage import LocalStore, ObjectMissing, S3WormStore, object_key
from storage.writer import init_store
from tests.storage.test_attack_local_worm import ROOT, _as_service
from tests.storage.test_attack_local_worm import work as work  # the fixture, used by name

SOON = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
DATA = b"frame data of a body-camera clip " * 64


def _put(store: LocalStore | S3WormStore, tmp_path: Path, data: bytes = DATA) -> str:
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    store.put_file(path, sha256=sha, size_bytes=len(data), retain_until=SOON)
    return sha


def _get(url: str, *, start: int | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, b""


def test_the_reader_gets_the_stored_bytes_where_they_are(worm_store, tmp_path):
    sha = _put(worm_store, tmp_path)
    with worm_store.read_in_place(sha) as source:
        if isinstance(worm_store, LocalStore):
            # the object's own sealed file, read-only: nothing was copied
            assert os.path.samefile(source, worm_store.tree.object_path(sha))
            assert stat.S_IMODE(os.stat(source).st_mode) == 0o444
            assert Path(source).read_bytes() == DATA
        else:
            # a presigned URL the reader fetches, by byte ranges too; without its signature the bucket refuses it
            assert source.startswith("http://127.0.0.1:") and object_key(sha) in source
            assert _get(source) == (200, DATA)
            assert _get(source, start=len(DATA) - 10) == (206, DATA[-10:])
            assert _get(source.split("?", 1)[0])[0] == 403


def test_a_missing_original_is_object_missing(worm_store):
    absent = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(ObjectMissing) as missing, worm_store.read_in_place(absent):
        pytest.fail("a source was given for an object that is not there")
    assert missing.value.key.endswith(object_key(absent))


@pytest.mark.s3
def test_a_presigned_url_lasts_as_long_as_asked(s3_store, tmp_path):
    sha = _put(s3_store, tmp_path)
    asked = datetime.now(UTC).timestamp()
    with s3_store.read_in_place(sha, valid_s=90.5) as url:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    lasts = float(query["X-Amz-Expires"][0]) if "X-Amz-Expires" in query else float(query["Expires"][0]) - asked
    assert 90.5 <= lasts <= 94  # never less than asked, whatever the signer's rounding to whole seconds
    # ...up to a week: AWS S3 and MinIO refuse a URL valid for longer (a redaction of 100 tracked regions asked
    # for 400 hours), so a longer wish gets a week and the reader's own deadlines end the work before it
    asked = datetime.now(UTC).timestamp()
    with s3_store.read_in_place(sha, valid_s=100 * 4 * 3600) as url:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    lasts = float(query["X-Amz-Expires"][0]) if "X-Amz-Expires" in query else float(query["Expires"][0]) - asked
    assert 7 * 24 * 3600 - 2 <= lasts <= 7 * 24 * 3600
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.status == 200


def test_the_service_account_reads_in_place_in_the_separate_owner_deployment(work, tmp_path):
    # Given a store owned by the store writer's account, and the service running as another account
    root = work / "worm"
    init_store(root, immutable=False)
    sha = _put(LocalStore(root), tmp_path)
    # When the service (in writer mode: it writes only through the writer's socket, not running now) asks for the
    # original in place
    out = _as_service(f"""
from storage import LocalStore
store = LocalStore(p({str(root)!r}))
assert store._client is not None or not {ROOT!r}, 'not in writer mode'
with store.read_in_place({sha!r}) as source:
    data = p(source).read_bytes()
    try:
        open(source, 'r+b')
        writable = 'opened for writing'
    except PermissionError as exc:
        writable = f'PermissionError: {{exc.strerror}}'
print(json.dumps({{'source': source, 'size': len(data), 'sha': hashlib.sha256(data).hexdigest(), 'write': writable}}))
""".replace("from storage", "import hashlib, json\nfrom storage", 1))
    seen = json.loads(out.splitlines()[0])
    # Then it reads the object's own file, and cannot write it
    assert (seen["source"], seen["size"], seen["sha"]) == (str(root / "objects" / object_key(sha)), len(DATA), sha)
    if ROOT:
        assert seen["write"] == "PermissionError: Permission denied"
