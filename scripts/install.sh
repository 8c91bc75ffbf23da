#!/usr/bin/env bash
# Turn a stock Raspberry Pi OS Lite (arm64, bookworm) into a Strongroom box.
#
#   sudo scripts/install.sh                     install or upgrade (safe to run again)
#   sudo scripts/install.sh --uninstall         remove the software, KEEP the records
#   sudo scripts/install.sh --uninstall --purge also destroy the records (asks first)
#   sudo scripts/install.sh --rollback          go back to the version before the last upgrade
#
# Options:
#   --root DIR   install into DIR instead of / (a scratch root for tests and image
#                builds): no apt, no systemctl, no user accounts, no chown
#   --no-apt     do not install Debian packages
#   --no-venv    do not create the virtualenv / pip install the code
#   --source DIR the Strongroom source tree (default: this script's repository)
#   --yes        with --purge: do not ask for confirmation
#   --skip-backup upgrade without the backup taken first (not recommended)
#   --force      with --rollback: go back even to a release that reads an older
#                archive schema (then restore the backup taken before the upgrade)
#
# Every step checks before it writes, so a second run changes nothing.
set -euo pipefail

readonly PROG="strongroom-install"
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT=""
DO_APT=1
DO_VENV=1
UNINSTALL=0
PURGE=0
ASSUME_YES=0
ROLLBACK=0
SKIP_BACKUP=0
UPGRADED=0

readonly SERVICE_USER="strongroom"
readonly OPT_DIR="/opt/strongroom"
readonly VENV_DIR="$OPT_DIR/venv"
readonly ETC_DIR="/etc/strongroom"
readonly DATA_DIR="/var/lib/strongroom"
readonly BACKUP_DIR="/mnt/strongroom-backup"
readonly UNIT_DIR="/etc/systemd/system"
readonly WATCHDOG_DROPIN="/etc/systemd/system.conf.d/strongroom-watchdog.conf"
readonly TIME_SYNC_DROPIN="/etc/systemd/system/systemd-time-wait-sync.service.d/strongroom.conf"
# Remote reach (off by default): lets the box create its onion socket for tor.
readonly REACH_DROPIN="/etc/systemd/system/strongroom.service.d/strongroom-reach.conf"
readonly BOOT_BEGIN="# >>> strongroom >>>"
readonly BOOT_END="# <<< strongroom <<<"
readonly UNITS=(
    strongroom.service
    strongroom-retention.service strongroom-retention.timer
    strongroom-backup.service strongroom-backup.timer
    strongroom-verify.service strongroom-verify.timer
    strongroom-fault.service
    strongroom-reach-helper.service
    strongroom-reach-tor.service strongroom-reach-tor.path
)
readonly ENABLED_UNITS=(
    strongroom.service
    strongroom-retention.timer strongroom-backup.timer strongroom-verify.timer
)
# Debian packages: no compiler and no SQLCipher headers, every dependency is a
# wheel (requirements-aarch64.lock); openssl verifies sealed exports.
readonly APT_PACKAGES=(python3 python3-venv openssl ca-certificates)
# gpiozero's pin driver on bookworm (the venv sees it through
# --system-site-packages). Raspberry Pi OS has it; plain Debian bookworm does
# not, and there the dashboard shows a front panel fault instead.
readonly APT_OPTIONAL=(python3-lgpio)

CHANGED=0       # something the running service reads changed: restart it
REBOOT_NEEDED=0 # config.txt changed: takes effect after a reboot

log() { printf '%s: %s\n' "$PROG" "$*"; }
die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

parse_args() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
        --root)
            [[ $# -ge 2 ]] || die "--root needs a directory"
            ROOT="$(cd "$2" && pwd)" || die "--root: no such directory: $2"
            shift
            ;;
        --source)
            [[ $# -ge 2 ]] || die "--source needs a directory"
            SOURCE="$(cd "$2" && pwd)" || die "--source: no such directory: $2"
            shift
            ;;
        --no-apt) DO_APT=0 ;;
        --no-venv) DO_VENV=0 ;;
        --uninstall) UNINSTALL=1 ;;
        --purge) PURGE=1 ;;
        --yes) ASSUME_YES=1 ;;
        --rollback) ROLLBACK=1 ;;
        --skip-backup) SKIP_BACKUP=1 ;;
        --force) FORCE=1 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown option: $1 (see --help)" ;;
        esac
        shift
    done
    if [[ $PURGE -eq 1 && $UNINSTALL -eq 0 ]]; then
        die "--purge only makes sense with --uninstall"
    fi
    # Alone it would install, silently ignoring what the administrator asked for.
    if [[ $FORCE -eq 1 && $ROLLBACK -eq 0 ]]; then
        die "--force only makes sense with --rollback"
    fi
    if [[ -n $ROOT ]]; then
        # A scratch root has no init system, package manager or accounts of its own.
        DO_APT=0
    fi
    [[ -f $SOURCE/pyproject.toml && -d $SOURCE/systemd ]] ||
        die "$SOURCE is not a Strongroom source tree"
}

live() { [[ -z $ROOT ]]; }

# Run a command that acts on the live system; skipped in a scratch root.
on_live_system() {
    if live; then
        "$@"
    fi
}

# install_file SRC DEST MODE: write DEST only when its content differs.
install_file() {
    local src="$1" dest="$ROOT$2" mode="$3"
    if [[ -f $dest ]] && cmp -s "$src" "$dest"; then
        return 0
    fi
    install -D -m "$mode" "$src" "$dest"
    CHANGED=1
    log "wrote $2"
}

# install_once SRC DEST MODE: configuration is the administrator's once written.
install_once() {
    local src="$1" dest="$ROOT$2" mode="$3"
    if [[ -e $dest ]]; then
        cmp -s "$src" "$dest" || log "kept your $2 (the shipped one is $src)"
        return 0
    fi
    install -D -m "$mode" "$src" "$dest"
    CHANGED=1
    log "wrote $2"
}

make_dir() {
    local dir="$ROOT$1" mode="$2"
    if [[ ! -d $dir ]]; then
        install -d -m "$mode" "$dir"
        log "created $1"
    fi
}

preflight() {
    if live; then
        [[ $(id -u) -eq 0 ]] || die "run as root (sudo), or use --root DIR"
        local codename=""
        if [[ -r /etc/os-release ]]; then
            codename="$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release | tr -d '"')"
        fi
        [[ $codename == bookworm ]] ||
            log "warning: made for Raspberry Pi OS bookworm, this is '${codename:-unknown}'"
        [[ $(uname -m) == aarch64 ]] || log "warning: made for arm64, this is $(uname -m)"
    fi
}

install_packages() {
    [[ $DO_APT -eq 1 ]] || return 0
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$pkg")
    done
    for pkg in "${APT_OPTIONAL[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$pkg?")
    done
    [[ ${#missing[@]} -gt 0 ]] || return 0
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    local wanted=()
    for pkg in "${missing[@]}"; do
        if [[ $pkg == *\? ]]; then
            pkg="${pkg%\?}"
            if ! apt-cache show "$pkg" >/dev/null 2>&1; then
                log "warning: $pkg is not in this system's archive: no front panel"
                continue
            fi
        fi
        wanted+=("$pkg")
    done
    [[ ${#wanted[@]} -gt 0 ]] || return 0
    log "installing Debian packages: ${wanted[*]}"
    apt-get install -y -qq --no-install-recommends "${wanted[@]}"
}

create_user() {
    live || return 0
    if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
        useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "Strongroom box" "$SERVICE_USER"
        log "created system user $SERVICE_USER"
    fi
    # gpio: the front panel. Raspberry Pi OS has the group (and the udev rule
    # giving it /dev/gpiochip*); plain Debian does not, and the units'
    # SupplementaryGroups=gpio would then fail with 216/GROUP: create it.
    if ! getent group gpio >/dev/null; then
        groupadd --system gpio
        log "created group gpio"
    fi
    if ! id -nG "$SERVICE_USER" | grep -qw gpio; then
        usermod -a -G gpio "$SERVICE_USER"
        log "added $SERVICE_USER to group gpio"
    fi
}

source_digest() {
    # Everything pip installs from: reinstall only when one of these changed.
    (
        cd "$SOURCE"
        find pyproject.toml app firmware/strongroom_panel -type f \
            ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 |
            LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
    )
}

install_config() {
    # root:strongroom 0750, as the unit's ConfigurationDirectoryMode= says
    # (systemd warns at every start when the modes differ).
    make_dir "$ETC_DIR" 0750
    on_live_system chgrp "$SERVICE_USER" "$ETC_DIR"
    chmod 0750 "$ROOT$ETC_DIR"
    install_once "$SOURCE/firmware/box.toml" "$ETC_DIR/box.toml" 0640
    install_once "$SOURCE/firmware/panel.toml" "$ETC_DIR/panel.toml" 0644
    on_live_system chgrp "$SERVICE_USER" "$ETC_DIR/box.toml" "$ETC_DIR/panel.toml"
    install_file "$SOURCE/docs/hardware.md" "$OPT_DIR/docs/hardware.md" 0644
    make_dir "$DATA_DIR" 0700
    on_live_system chown "$SERVICE_USER:$SERVICE_USER" "$DATA_DIR"
    make_dir "$BACKUP_DIR" 0755
}

# The unit files and drop-ins, from BASE: this source tree, or the copy a
# release kept of the ones it was installed with (save_release_units).
install_units() {
    local base="${1:-$SOURCE}" unit src dest
    for unit in "${UNITS[@]}"; do
        # A release's copy may lack a unit a newer tree added.
        [[ -f $base/systemd/$unit ]] || continue
        install_file "$base/systemd/$unit" "$UNIT_DIR/$unit" 0644
    done
    for src in firmware/boot/watchdog.conf:"$WATCHDOG_DROPIN" \
        firmware/boot/time-wait-sync.conf:"$TIME_SYNC_DROPIN" \
        firmware/systemd/strongroom-reach.conf:"$REACH_DROPIN"; do
        dest="${src#*:}"
        src="${src%%:*}"
        [[ ! -f $base/$src ]] || install_file "$base/$src" "$dest" 0644
    done
}

boot_config_path() {
    # bookworm moved the boot partition to /boot/firmware.
    local candidate
    for candidate in /boot/firmware/config.txt /boot/config.txt; do
        if [[ -f $ROOT$candidate ]]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

# The text between our markers (markers included), or nothing.
current_boot_block() {
    sed -n "\\|^$BOOT_BEGIN|,\\|^$BOOT_END|p" "$1"
}

remove_boot_block() {
    # A begin marker without its end would make the range run to the end of the
    # file and delete the administrator's own settings: refuse instead.
    if grep -q "^$BOOT_BEGIN" "$1" && ! grep -q "^$BOOT_END" "$1"; then
        die "$1 has '$BOOT_BEGIN' without '$BOOT_END'; fix it by hand"
    fi
    sed -i "\\|^$BOOT_BEGIN|,\\|^$BOOT_END|d" "$1"
}

install_boot_config() {
    local rel file fragment="$SOURCE/firmware/boot/config.txt"
    if ! rel="$(boot_config_path)"; then
        log "warning: no /boot/firmware/config.txt: not a Raspberry Pi OS boot partition, skipped"
        return 0
    fi
    file="$ROOT$rel"
    if [[ "$(current_boot_block "$file")" == "$(<"$fragment")" ]]; then
        return 0
    fi
    remove_boot_block "$file"
    # Start on a fresh line even if the file lacks a final newline.
    if [[ -s $file && -n "$(tail -c 1 "$file")" ]]; then
        printf '\n' >>"$file"
    fi
    cat "$fragment" >>"$file"
    REBOOT_NEEDED=1
    log "added the Strongroom block to $rel"
}

enable_units() {
    live || return 0
    # systemd not running (an image build in a chroot): enable only, the
    # units start at the first boot.
    local running=1
    [[ -d /run/systemd/system ]] || running=0
    [[ $running -eq 0 ]] || systemctl daemon-reload
    systemctl enable --quiet "${ENABLED_UNITS[@]}"
    # A time source is configured: make time-sync.target wait for it (90 s at most).
    if systemctl is-enabled --quiet systemd-timesyncd.service 2>/dev/null; then
        systemctl enable --quiet systemd-time-wait-sync.service
    fi
    if [[ $running -eq 0 ]]; then
        log "systemd is not running here (chroot?): units enabled, they start at boot"
        return 0
    fi
    # Timers first: a service that fails to start must not leave them stopped
    # (set -e would stop the script at that line).
    systemctl start strongroom-retention.timer strongroom-backup.timer strongroom-verify.timer
    if systemctl is-active --quiet strongroom.service; then
        if [[ $CHANGED -eq 1 ]]; then
            log "restarting strongroom.service"
            systemctl restart strongroom.service || RESTART_FAILED=1
        fi
    else
        systemctl start strongroom.service || RESTART_FAILED=1
    fi
}

print_first_run_url() {
    local addresses=() address
    if live; then
        read -r -a addresses <<<"$(hostname -I 2>/dev/null || true)"
    fi
    printf '\n'
    log "Strongroom is installed. Open the first-run page from a computer on this network:"
    printf '    https://strongroom.local/\n'
    # Only what the box serves: an older box.toml with host = "0.0.0.0" is IPv4 only.
    local ipv6=1
    grep -Eq '^[[:space:]]*host[[:space:]]*=[[:space:]]*"0\.0\.0\.0"' "$ROOT$ETC_DIR/box.toml" && ipv6=0
    for address in "${addresses[@]}"; do
        if [[ $address == *:* ]]; then
            [[ $ipv6 -eq 1 ]] || continue
            printf '    https://[%s]/\n' "$address"
        else
            printf '    https://%s/\n' "$address"
        fi
    done
    printf '  The browser will warn about the self-signed certificate: compare the\n'
    printf '  fingerprint it shows with the one on the first-run page.\n'
    if [[ $REBOOT_NEEDED -eq 1 ]]; then
        log "reboot once to turn on the hardware watchdog: sudo reboot"
    fi
}

main() {
    parse_args "$@"
    if [[ $UNINSTALL -eq 1 ]]; then
        uninstall
        return 0
    fi
    if [[ $ROLLBACK -eq 1 ]]; then
        rollback
        return 0
    fi
    preflight
    install_packages
    create_user
    # Before the switch: tor's part may fail (no mirror) without leaving the
    # new release half installed.
    install_reach
    install_venv
    # From here until check_upgrade, any exit puts the links back (on_exit).
    install_config
    install_units
    save_release_units
    install_boot_config
    enable_units
    check_upgrade
    # The release is known good (or switched back) before the helper's units.
    enable_reach
    prune_venvs
    print_first_run_url
}

# shellcheck source=scripts/install-venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/install-venv.sh"
# shellcheck source=scripts/install-reach.sh
source "$(dirname "${BASH_SOURCE[0]}")/install-reach.sh"
# shellcheck source=scripts/install-remove.sh
source "$(dirname "${BASH_SOURCE[0]}")/install-remove.sh"

# Whatever stops the script (a die, a failing command under set -e, Ctrl-C):
# apt's policy-rc.d guard goes, and a switch not yet checked is undone.
on_exit() {
    local rc=$?
    [[ -z $POLICY_RC_D ]] || rm -f -- "$POLICY_RC_D"
    [[ $rc -eq 0 ]] || undo_switch
}
POLICY_RC_D="" # install_tor_package's guard while apt runs
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

main "$@"
