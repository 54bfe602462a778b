#!/usr/bin/env bash
# Installs Whisper Desk into ./.venv: system libraries for Qt (Debian/Ubuntu), then the Python packages.
#   bash scripts/install.sh          the app
#   bash scripts/install.sh --test   the app, the optional openai-whisper engine, and the test tools
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
[[ "${1:-}" == "--test" ]] && with_tests=1

# Qt's offscreen/xcb platforms, QtMultimedia (libpulse0) and Xvfb for screenshots.
SYSTEM_PACKAGES=(libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libglib2.0-0
  libpulse0 libx11-xcb1 libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxcb-image0 libxcb-render-util0
  libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxcb-randr0 libxcb-xfixes0 libxcb-sync1 libxcb-shm0
  libxcb-render0 fonts-dejavu-core)
# the tests also run the real window on Xvfb and read the screen back with OCR, and speak test speech (espeak-ng);
# scripts/stress_suite.sh loads every core with stress-ng; the playback and live-capture tests start their own
# PulseAudio server (pulseaudio) and play into it and record from it (paplay, parec, pactl: pulseaudio-utils)
[[ $with_tests == 1 ]] && SYSTEM_PACKAGES+=(xvfb xauth tesseract-ocr tesseract-ocr-eng espeak-ng stress-ng pulseaudio
  pulseaudio-utils)

if command -v apt-get >/dev/null; then
  sudo_cmd=""
  [[ $(id -u) != 0 ]] && sudo_cmd="sudo"
  missing=()
  for pkg in "${SYSTEM_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if (( ${#missing[@]} )); then
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
  fi
else
  echo "install.sh: not a Debian/Ubuntu system; install these (or your system's equivalents): ${SYSTEM_PACKAGES[*]}" >&2
fi

PYTHON=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [[ $with_tests == 1 ]]; then
  # torch pinned to the CPU build; openai-whisper without triton (GPU-only, 1 GB); its real needs are in the extra.
  .venv/bin/python -m pip install -q -e '.[test]'
  .venv/bin/python -m pip install -q --no-deps 'openai-whisper==20250625'
else
  .venv/bin/python -m pip install -q -e .
fi
# the speaker model (worker/speakers/voice_encoder.py reads its weights and runs it in numpy): without its torch,
# librosa and webrtcvad (the test extra brings librosa and webrtcvad to check our embeddings against it)
.venv/bin/python -m pip install -q --no-deps 'resemblyzer==0.1.4'
echo "Whisper Desk installed in .venv"
