"""Copy the front-end files the web app ships (and its browser tests use) out of their npm packages, at pinned
versions, into the repository, so that no page loads anything from a CDN and an archive without internet access
serves every page whole.

    python scripts/vendor_npm.py            # fetch each pinned package with `npm pack` and copy its files
    python scripts/vendor_npm.py --check    # only check the copies against their vendor.json (no network)

Each destination gets a `vendor.json`: the package, its version, the registry's integrity hash of the tarball and
the SHA-256 of every file copied. Commit what it writes. `--check` (and tests/evidence/web/test_vendored.py) fails
when a copied file no longer matches, or the pins below and the copies disagree: an edited copy is found.
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: package -> (version, destination under the repository, files of the package to copy: globs)
PINNED: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "swagger-ui-dist": ("5.35.0", "evidence/web/static/vendor/swagger-ui",
                        ("swagger-ui.css", "swagger-ui-bundle.js", "LICENSE")),
    "@picocss/pico": ("2.1.1", "evidence/web/static/vendor/pico", ("css/pico.min.css", "LICENSE.md")),
    "leaflet": ("1.9.4", "evidence/web/static/vendor/leaflet",
                ("dist/leaflet.js", "dist/leaflet.css", "dist/images/*.png", "LICENSE")),
    "axe-core": ("4.14.1", "tests/vendor/axe-core", ("axe.min.js", "LICENSE")),
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(name: str) -> None:
    """`npm pack NAME@VERSION`, then copy its pinned files and write vendor.json."""
    version, dest, globs = PINNED[name]
    target = ROOT / dest
    with tempfile.TemporaryDirectory() as work:
        packed = json.loads(subprocess.run(["npm", "pack", f"{name}@{version}", "--json"], cwd=work, check=True,
                                           capture_output=True, text=True).stdout)[0]
        with tarfile.open(Path(work) / packed["filename"]) as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
            chosen = [m for m in members
                      if any(fnmatch.fnmatch(m.name.removeprefix("package/"), g) for g in globs)]
            missing = [g for g in globs if not any(fnmatch.fnmatch(m.name.removeprefix("package/"), g)
                                                   for m in chosen)]
            if missing:
                raise SystemExit(f"{name}@{version} has no {', '.join(missing)}")
            if target.exists():
                shutil.rmtree(target)
            files = {}
            for member in chosen:
                relative = member.name.removeprefix("package/")
                out = target / relative
                out.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                out.write_bytes(source.read())
                files[relative] = _sha256(out)
    (target / "vendor.json").write_text(json.dumps({
        "package": name, "version": version, "integrity": packed["integrity"], "files": dict(sorted(files.items()))},
        indent=2) + "\n", encoding="utf-8")
    print(f"{name}@{version}: {len(files)} files in {dest}")


def problems() -> list[str]:
    """What is wrong with the copies in the repository (empty when each matches its pin and its vendor.json)."""
    found = []
    for name, (version, dest, _globs) in PINNED.items():
        record_path = ROOT / dest / "vendor.json"
        if not record_path.exists():
            found.append(f"{dest}: no vendor.json (run scripts/vendor_npm.py)")
            continue
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if (record["package"], record["version"]) != (name, version):
            found.append(f"{dest}: holds {record['package']}@{record['version']}, pinned {name}@{version}")
        for relative, digest in record["files"].items():
            path = ROOT / dest / relative
            if not path.exists():
                found.append(f"{dest}/{relative}: missing")
            elif _sha256(path) != digest:
                found.append(f"{dest}/{relative}: SHA-256 {_sha256(path)[:16]}… is not the packaged {digest[:16]}…")
        extra = {str(p.relative_to(ROOT / dest)) for p in (ROOT / dest).rglob("*") if p.is_file()} - {
            *record["files"], "vendor.json"}
        found += [f"{dest}/{e}: not from the package" for e in sorted(extra)]
        found += [f"{path}: ignored by git, so a clean checkout would not have it (see .gitignore)"
                  for path in _ignored([f"{dest}/{relative}" for relative in record["files"]])]
    return found


def _ignored(paths: list[str]) -> list[str]:
    """Those of *paths* (under ROOT) that git ignores and does not track; none outside a git checkout."""
    if not (ROOT / ".git").exists() or not paths:
        return []
    answer = subprocess.run(["git", "check-ignore", "--stdin"], cwd=ROOT, input="\n".join(paths), text=True,
                            capture_output=True, check=False)
    return answer.stdout.split()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check the copies against their vendor.json")
    args = parser.parse_args()
    if not args.check:
        for name in PINNED:
            fetch(name)
    wrong = problems()
    for line in wrong:
        print(line, file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
