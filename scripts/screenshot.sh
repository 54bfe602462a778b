#!/usr/bin/env bash
# Screenshot of the real window under Xvfb (needs Debian's xvfb and x11-utils), as a new user: `whisper-desk FILE` with empty data dirs.
#   bash scripts/screenshot.sh OUT.png FILE [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "$1"); file=$(realpath "$2"); wait_s=${3:-25}
home=$(mktemp -d)
n=97; while [ -e /tmp/.X$n-lock ]; do n=$((n + 1)); done; display=:$n  # a display nobody uses
Xvfb $display -screen 0 1400x900x24 >/dev/null 2>&1 &
xvfb_pid=$!
trap 'kill $app_pid $xvfb_pid 2>/dev/null || true; rm -rf "$home"' EXIT
sleep 1
env -u QT_QPA_PLATFORM DISPLAY=$display HOME="$home" XDG_DATA_HOME="$home/data" XDG_CONFIG_HOME="$home/config" \
  XDG_CACHE_HOME="$home/cache" MODAL_CONFIG_PATH="$home/.modal.toml" \
  .venv/bin/whisper-desk "$file" >"$home/app.log" 2>&1 &
app_pid=$!
sleep "$wait_s"
# the screen cropped to the window named "Whisper Desk" (xwininfo: x11-utils)
geometry=$(DISPLAY=$display xwininfo -name "Whisper Desk" 2>/dev/null | awk '
  /Absolute upper-left X/ {x=$NF} /Absolute upper-left Y/ {y=$NF} /Width:/ {w=$NF} /Height:/ {h=$NF}
  END {if (w) printf "%dx%d+%d+%d", w, h, x, y}')
# read back from the X server with Qt's own screen grab (the venv's PySide6; no ImageMagick needed)
DISPLAY=$display QT_QPA_PLATFORM=xcb .venv/bin/python - "$out" "$geometry" <<'EOF'
import re, sys
from PySide6.QtGui import QGuiApplication
app = QGuiApplication(["screenshot"])
w, h, x, y = map(int, re.findall(r"\d+", sys.argv[2])) if sys.argv[2] else (-1, -1, 0, 0)
sys.exit(0 if QGuiApplication.primaryScreen().grabWindow(0, x, y, w, h).save(sys.argv[1]) else 1)
EOF
echo "wrote $out"; tail -5 "$home/app.log"
