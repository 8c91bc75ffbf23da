#!/usr/bin/env bash
# `make demo`: a dev box and two simulated phones chatting, the whole story in one command.
#
# The box is a fresh dev box (mock GPIO, loopback, a free port) in $DEMO_DIR
# (default var/demo, recreated on every run); the phones are the reference client
# (scripts/demo_phones.py). At the end the box is stopped and the archive verified.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
DEMO_DIR=${DEMO_DIR:-var/demo}
MARKER="$DEMO_DIR/.strongroom-demo"

if [ ! -x "$PY" ]; then
    echo "demo: $PY not found; run 'make demo' (it installs the venv first)" >&2
    exit 1
fi
# Only ever delete a directory this script created.
if [ -e "$DEMO_DIR" ]; then
    if [ ! -e "$MARKER" ]; then
        echo "demo: $DEMO_DIR exists and is not a demo box; set DEMO_DIR elsewhere" >&2
        exit 1
    fi
    rm -rf "$DEMO_DIR"
fi
mkdir -p "$DEMO_DIR"
touch "$MARKER"

echo "== Strongroom demo =="
PORT=$("$PY" scripts/demo_phones.py prepare --data "$DEMO_DIR")
echo "Dev box created in $DEMO_DIR (24 words, admin account, unattended key file), port $PORT"

BOX_PID=""
stop_box() {
    if [ -n "$BOX_PID" ] && kill -0 "$BOX_PID" 2>/dev/null; then
        kill -TERM "$BOX_PID"
        wait "$BOX_PID" || true
    fi
    BOX_PID=""
}
trap stop_box EXIT

"$PY" -m strongroom dev --data "$DEMO_DIR" >"$DEMO_DIR/box.log" 2>&1 &
BOX_PID=$!

if ! "$PY" scripts/demo_phones.py chat --data "$DEMO_DIR"; then
    echo "demo: the phones failed; the box said:" >&2
    tail -n 30 "$DEMO_DIR/box.log" >&2
    exit 1
fi

stop_box
echo "Box stopped."
echo "== strongroom devices =="
"$PY" -m strongroom devices --data "$DEMO_DIR"
echo "== strongroom verify =="
"$PY" -m strongroom verify --data "$DEMO_DIR"
echo "== demo finished: the box's data stays in $DEMO_DIR =="
