#!/usr/bin/env bash
# Set up baton on Debian/Ubuntu: system programs (apt-get), a virtual environment in .venv, and the
# Python packages. Safe to run again: it installs only what is missing.
#
#   scripts/setup.sh            baton, its offline experts, the server and the web UI (extras: offline, llm, server, ui)
#   scripts/setup.sh --dev      the same plus the test and lint tools (dependency group: dev), chromium for the
#                               browser test, and a CPU torch with the hf extra for the tests that build tiny Hub models
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg'; use --dev or --help" >&2; exit 2 ;;
  esac
done

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup.sh: baton needs Python 3.11 or newer; install it or set PYTHON=/path/to/python3.11" >&2
  exit 2
fi

# programs the offline experts run, by the Debian package that provides them
missing=()
command -v tesseract >/dev/null || missing+=(tesseract-ocr)
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
[ "$dev" -eq 0 ] || command -v chromium >/dev/null || missing+=(chromium)  # the web UI's browser test
"$python" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup.sh: installing ${missing[*]} with apt-get"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip --quiet --disable-pip-version-check)
# pip >= 25.1 reads dependency groups
.venv/bin/python -c 'import sys, pip; sys.exit(int(pip.__version__.split(".")[0]) < 25)' || "${pip[@]}" install --upgrade pip
"${pip[@]}" install -e ".[offline,llm,server,ui]"
if [ "$dev" -eq 1 ]; then
  # the tests build tiny Hub models: a CPU torch first (pinned: a looser pin pulls GBs of CUDA), then the hf extra
  .venv/bin/python -c 'import torch' 2>/dev/null || "${pip[@]}" install torch==2.13.0
  "${pip[@]}" install -e ".[hf]"
  "${pip[@]}" install --group dev
fi
echo "setup.sh: ready; run .venv/bin/baton --help"
