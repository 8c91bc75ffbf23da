#!/usr/bin/env bash
# System packages the tests need: Debian's chromium (driven by Playwright, no
# browser download), openssl (export verification), systemd (unit checks).
# Installed when we are root; otherwise one line names what is missing.
set -euo pipefail
needed=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || needed+=(chromium)
command -v openssl >/dev/null 2>&1 || needed+=(openssl)
command -v systemd-analyze >/dev/null 2>&1 || needed+=(systemd)
command -v sha256sum >/dev/null 2>&1 || needed+=(coreutils)
command -v shellcheck >/dev/null 2>&1 || needed+=(shellcheck)
command -v unzip >/dev/null 2>&1 || needed+=(unzip)  # VERIFY.txt's lines, run by the tests
command -v pdftotext >/dev/null 2>&1 || needed+=(poppler-utils)  # the exports' PDF text
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || needed+=(fonts-dejavu-core)
command -v pdftotext >/dev/null 2>&1 || needed+=(poppler-utils)  # reading the recovery sheet PDF back
command -v ip >/dev/null 2>&1 || needed+=(iproute2)
command -v nft >/dev/null 2>&1 || needed+=(nftables)
# mDNS through avahi-daemon (tests/test_avahi_publish.py: a private bus and
# daemon per network namespace, browsed from another one).
command -v dbus-daemon >/dev/null 2>&1 || needed+=(dbus)
command -v avahi-daemon >/dev/null 2>&1 || needed+=(avahi-daemon)
command -v avahi-browse >/dev/null 2>&1 || needed+=(avahi-utils)
# The appliance booted for real (tests/test_appliance_boot.py).
command -v debootstrap >/dev/null 2>&1 || needed+=(debootstrap)
command -v systemd-nspawn >/dev/null 2>&1 || needed+=(systemd-container)
[ ${#needed[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${needed[@]}" >/dev/null
else
    echo "strongroom: missing Debian package(s): ${needed[*]} (run: sudo apt-get install ${needed[*]})" >&2
    exit 1
fi
