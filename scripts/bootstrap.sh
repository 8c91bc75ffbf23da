#!/usr/bin/env bash
# Create the project's virtualenv and install the pinned dependencies.
# Called by the Makefile; safe to run again.
set -euo pipefail
venv="${1:-.venv}"

pick_python() {
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

py=$(pick_python) || {
    echo "strongroom: Python 3.11 or newer is required (Debian package: python3)" >&2
    exit 1
}

if [ ! -x "$venv/bin/python" ]; then
    if ! "$py" -m venv "$venv" 2>/dev/null; then
        rm -rf "$venv"
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
            "$py" -m venv "$venv"
        else
            echo "strongroom: missing Debian package python3-venv (run: sudo apt-get install python3-venv)" >&2
            exit 1
        fi
    fi
fi

"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'
