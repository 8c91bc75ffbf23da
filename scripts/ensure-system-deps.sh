#!/usr/bin/env bash
# System packages the tests need: Debian's chromium (driven by Playwright, no
# browser download), openssl (export verification), systemd (unit checks), tor
# (remote reach: tor and tor-gencert build a private Tor network on loopback).
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
command -v ip >/dev/null 2>&1 || needed+=(iproute2)
command -v nft >/dev/null 2>&1 || needed+=(nftables)
{ [ -x /usr/sbin/tor ] && command -v tor-gencert >/dev/null 2>&1; } || needed+=(tor)
command -v unshare >/dev/null 2>&1 || needed+=(util-linux)
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
    # tor and avahi-daemon are tools for the tests (private networks in
    # namespaces), not services for this machine: no package may start its
    # daemon while we install (policy-rc.d 101 = "not now"), which would join
    # the real Tor network or announce this machine on its LAN.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${needed[@]}" >/dev/null
    if [ -d /run/systemd/system ]; then
        # Nor at the next boot: the tests run their own private tors and avahis.
        for unit in tor.service avahi-daemon.service avahi-daemon.socket; do
            systemctl disable --now "$unit" >/dev/null 2>&1 || true
        done
    fi
else
    echo "strongroom: missing Debian package(s): ${needed[*]} (run: sudo apt-get install ${needed[*]})" >&2
    exit 1
fi
