# shellcheck shell=bash disable=SC2034,SC2153
# Sourced by scripts/install.sh: remote reach over Tor made ready, left OFF.
# (the settings it reads belong to install.sh; removal is in install-remove.sh)
#
# What a later `strongroom reach on` needs, done once here (docs/operations.md,
# "Remote reach over Tor"): Debian's tor package, the %include line in
# /etc/tor/torrc, the include file itself (saying "off"), the socket directory
# tor connects to, and the helper's units. tor does NOT run while reach is off:
# a fresh install leaves tor.service disabled and strongroom-reach-tor.service
# starts tor@default when the helper writes an onion service into the include
# file (and stops it when the helper takes it out).

readonly TORRC="/etc/tor/torrc"
readonly TOR_DATA="/var/lib/tor"
readonly REACH_CONF="$TOR_DATA/strongroom-reach.conf"
readonly TORRC_INCLUDE="%include $REACH_CONF"
readonly TORRC_NOTE="# Strongroom remote reach (scripts/install.sh; --uninstall removes these two lines)"
readonly ONION_SOCKETS="/var/lib/tor-onion-sockets"
readonly REACH_SOCKET_DIR="$ONION_SOCKETS/default/strongroom"
readonly REACH_UNITS=(
    strongroom-reach-helper.service strongroom-reach-tor.path strongroom-reach-tor.service
)

tor_installed() {
    dpkg-query -W -f='${Status}' tor 2>/dev/null | grep -q "install ok installed"
}

# Debian's tor, installed without ever starting it: its postinst enables and
# starts tor.service, which would join the Tor network for nothing while
# reach is off. A policy-rc.d saying "not now" (101) for tor alone stops the
# start; one the administrator already has is left alone (tor is stopped
# right after instead).
install_tor_package() {
    if tor_installed; then
        if systemctl --quiet is-enabled tor.service 2>/dev/null; then
            log "note: tor.service is enabled, so tor runs even while remote reach is off" \
                "(if only Strongroom uses it: systemctl disable --now tor)"
        fi
        return 0
    fi
    if [[ $DO_APT -eq 0 ]]; then
        log "tor is not installed (--no-apt): remote reach cannot be turned on until it is"
        return 0
    fi
    local policy=/usr/sbin/policy-rc.d guarded=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\n# %s: tor must not start while it is installed\n' "$PROG" >"$policy"
        # shellcheck disable=SC2016 # $1 is policy-rc.d's own argument
        printf 'case "$1" in tor | tor.service | tor@*) exit 101 ;; esac\nexit 0\n' >>"$policy"
        POLICY_RC_D="$policy" # on_exit (install.sh) removes it, even on Ctrl-C
        chmod 0755 "$policy"
        guarded=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    log "installing Debian's tor (remote reach; it stays off until you turn it on)"
    # The package lists, unless install_packages (or someone) just fetched them.
    local lists
    lists="$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -60 -print -quit)"
    if ! { { [[ -n $lists ]] || apt-get update -qq; } &&
        apt-get install -y -qq --no-install-recommends tor; }; then
        [[ $guarded -eq 0 ]] || rm -f "$policy"
        POLICY_RC_D=""
        # As --no-apt: the box itself does not need tor, only `reach on` does.
        log "warning: could not install tor: remote reach cannot be turned on until it is" \
            "(apt-get install tor, then run the installer again)"
        return 0
    fi
    [[ $guarded -eq 0 ]] || rm -f "$policy"
    POLICY_RC_D=""
    # Installed here, so it runs only while reach is on (strongroom-reach-tor.service).
    systemctl disable --quiet tor.service
    if [[ -d /run/systemd/system && $guarded -eq 0 ]]; then
        systemctl stop tor.service tor@default.service
    fi
}

# write_as_tor FILE TEXT: a new 0644 file in tor's directory, created by
# debian-tor itself on a live system, so that no link or race there can turn
# root's write or chown against another file (a scratch root has no such user).
write_as_tor() {
    if live && id -u debian-tor >/dev/null 2>&1; then
        # shellcheck disable=SC2016 # $1 and $2 belong to the inner shell
        runuser -u debian-tor -- sh -c 'umask 022; set -C; printf "%s\n" "$2" >"$1"' sh "$1" "$2"
    else
        (
            umask 022
            set -C # O_EXCL: never through a link
            printf '%s\n' "$2" >"$1"
        )
    fi
}

# The %include line, once, at the end of the administrator's torrc (which is
# otherwise left as it is); the file it names exists first, saying "off", so
# tor never fails on a missing include.
add_torrc_include() {
    local conf="$ROOT$REACH_CONF" torrc="$ROOT$TORRC"
    # tor's directory belongs to debian-tor: a link planted there must not
    # make root write (or chown) whatever it points at.
    if [[ -L $conf ]]; then
        die "$REACH_CONF is a symbolic link: refusing to write through it as root (remove it and run the installer again)"
    fi
    if [[ ! -e $conf ]]; then
        write_as_tor "$conf" '# Remote reach is off. strongroom-reach-helper rewrites this file.'
        log "wrote $REACH_CONF (remote reach off)"
    fi
    if ! grep -qxF "$TORRC_INCLUDE" "$torrc"; then
        if [[ -s $torrc && -n "$(tail -c 1 "$torrc")" ]]; then
            printf '\n' >>"$torrc"
        fi
        printf '%s\n%s\n' "$TORRC_NOTE" "$TORRC_INCLUDE" >>"$torrc"
        log "added '$TORRC_INCLUDE' to $TORRC"
    fi
    # A sandboxed tor cannot add an onion service on reload.
    if grep -Eq '^[[:space:]]*Sandbox[[:space:]]+1' "$torrc"; then
        log "warning: $TORRC sets 'Sandbox 1': remote reach needs tor's sandbox off"
    fi
}

# Debian's convention for onion-service sockets (README.Debian of tor): a
# directory of the backend's own, 02750 backend:debian-tor.
make_reach_socket_dir() {
    make_dir "$ONION_SOCKETS" 0755
    make_dir "$ONION_SOCKETS/default" 0755
    # Under our own root-owned directories, but checked all the same: chmod
    # and chown below must act on this directory and nothing else.
    if [[ -L $ROOT$ONION_SOCKETS || -L $ROOT$ONION_SOCKETS/default || -L $ROOT$REACH_SOCKET_DIR ]]; then
        die "$REACH_SOCKET_DIR (or a directory above it) is a symbolic link: refusing to chown through it"
    fi
    if [[ ! -d $ROOT$REACH_SOCKET_DIR ]]; then
        install -d -m 02750 "$ROOT$REACH_SOCKET_DIR"
        log "created $REACH_SOCKET_DIR"
        # A running box sees the directory only once restarted (its sandbox).
        CHANGED=1
    fi
    on_live_system chown -h "$SERVICE_USER:debian-tor" "$REACH_SOCKET_DIR"
    chmod 02750 "$ROOT$REACH_SOCKET_DIR"
}

# Before the box (re)starts: everything on disk that `reach on` needs.
install_reach() {
    live && install_tor_package
    if [[ ! -f $ROOT$TORRC || ! -d $ROOT$TOR_DATA ]]; then
        log "tor is not installed here: remote reach stays unavailable"
        return 0
    fi
    add_torrc_include
    make_reach_socket_dir
}

# After the box's units: the helper and the tor switch, enabled and started.
enable_reach() {
    live || return 0
    if [[ ! -f $TORRC ]] || ! id -u debian-tor >/dev/null 2>&1; then
        return 0
    fi
    # The box is installed and checked by now: a helper unit that fails only
    # leaves remote reach unavailable, it must not fail the install.
    systemctl enable --quiet "${REACH_UNITS[@]}" ||
        log "warning: could not enable ${REACH_UNITS[*]}: remote reach is unavailable"
    [[ -d /run/systemd/system ]] || return 0
    if [[ $CHANGED -eq 1 ]] && systemctl is-active --quiet strongroom-reach-helper.service; then
        systemctl restart strongroom-reach-helper.service ||
            log "warning: strongroom-reach-helper.service did not restart: journalctl -u strongroom-reach-helper -b"
    fi
    systemctl start strongroom-reach-helper.service strongroom-reach-tor.path ||
        log "warning: the remote reach helper did not start: journalctl -u strongroom-reach-helper -b"
    # Brings tor in line with the switch as it is now (on after an upgrade: tor runs).
    systemctl start strongroom-reach-tor.service ||
        log "warning: tor did not follow the remote reach switch: journalctl -u strongroom-reach-tor -b"
}
