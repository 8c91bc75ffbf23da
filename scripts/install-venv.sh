# shellcheck shell=bash disable=SC2034,SC2153
# (the settings it reads and the flags it sets belong to install.sh)
# Sourced by scripts/install.sh: the virtualenvs, upgrades and --rollback.
#
# Each release gets its own virtualenv, /opt/strongroom/venvs/<source digest>,
# built beside the running one; /opt/strongroom/venv is a symlink to the one in
# use and /opt/strongroom/venv.previous to the one before. An upgrade:
#   1. builds the new venv (the locked wheels, checked by hash; nothing compiled),
#   2. takes a backup through the running box (`strongroom backup`, the nightly
#      job's own command; refused if the box is locked or the backup fails),
#   3. switches the symlink (one rename) and restarts the service, which
#      migrates the archive when it opens it,
#   4. goes back by itself if the new version does not come up (no READY=1, or
#      not still running with the same PID UPGRADE_SETTLE_S seconds later): the
#      links are put back as they were (and the unit files of the release
#      gone back to: venvs/X/units), the failed venv removed, exit 1.
# `install.sh --rollback` switches back to venv.previous by hand; it refuses
# when the previous release reads an older archive schema (it could not open an
# archive the newer one has migrated) unless --force.

readonly VENVS_DIR="$OPT_DIR/venvs"
readonly PREVIOUS_LINK="$OPT_DIR/venv.previous"
readonly LOCK_FILE="requirements-aarch64.lock"
readonly COMPLETE_MARK=".strongroom-complete"
# How long a restarted service must keep running (same PID) to count as up.
readonly UPGRADE_SETTLE_S="${STRONGROOM_UPGRADE_SETTLE_S:-10}"
FORCE=0           # --rollback --force: go back even to an older archive schema
RESTART_FAILED=0  # enable_units: systemctl start/restart of the service failed
BEFORE_VENV=""    # the links as this run found them, for the switch-back
BEFORE_PREVIOUS=""
SWITCHED=0        # install_venv switched, check_upgrade has not yet judged it
RELEASE=""         # venvs/<id> this run installs (install_venv)
# Each release keeps the unit files it was installed with, in venvs/<id>/units
# (laid out as in the source tree): switching releases (--rollback, a
# switch-back) installs those of the release switched to, whose code they run.
readonly RELEASE_UNIT_FILES=(
    systemd firmware/boot/watchdog.conf firmware/boot/time-wait-sync.conf
    firmware/systemd/strongroom-reach.conf
)

# build_venv DIR: a fresh venv with the locked dependencies and Strongroom.
build_venv() {
    local dir="$1" pip=("$1/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check)
    rm -rf -- "$dir"
    # --system-site-packages: python3-lgpio comes from Debian / Raspberry Pi OS.
    python3 -m venv --system-site-packages "$dir"
    if [[ $(uname -m) == aarch64 ]]; then
        # Every transitive dependency pinned and hashed; wheels only, so the Pi
        # needs neither a compiler nor SQLCipher's headers.
        "${pip[@]}" --require-hashes --only-binary=:all: -r "$SOURCE/$LOCK_FILE"
        "${pip[@]}" --no-deps --no-build-isolation --no-index "$SOURCE"
    else
        log "warning: $LOCK_FILE is for arm64; on $(uname -m) only pyproject's pins apply"
        "${pip[@]}" "$SOURCE"
    fi
    touch "$dir/$COMPLETE_MARK"
}

# set_link LINK TARGET: LINK (under ROOT) -> TARGET in one rename; no TARGET: no link.
set_link() {
    local link="$ROOT$1" target="$2"
    if [[ -z $target ]]; then
        rm -f -- "$link"
        return 0
    fi
    ln -sfn "$target" "$link.tmp"
    mv -Tf "$link.tmp" "$link"
}

# switch_venv TARGET: point venv at venvs/TARGET (relative), the old one becomes previous.
switch_venv() {
    local target="$1" old=""
    old="$(readlink "$ROOT$VENV_DIR" 2>/dev/null || true)"
    [[ $old == "$target" ]] && return 0
    set_link "$VENV_DIR" "$target"
    [[ -z $old ]] || set_link "$PREVIOUS_LINK" "$old"
    log "now using $VENV_DIR -> $target${old:+ (previous: $old)}"
}

# Older releases installed a plain directory: keep it as the previous version.
adopt_plain_venv() {
    local link="$ROOT$VENV_DIR"
    if [[ -d $link && ! -L $link ]]; then
        mkdir -p "$ROOT$VENVS_DIR"
        mv -T "$link" "$ROOT$VENVS_DIR/plain"
        ln -sfn "venvs/plain" "$link"
        log "kept the installed virtualenv as $VENVS_DIR/plain"
    fi
}

pre_upgrade_backup() {
    live || return 0
    [[ -x $VENV_DIR/bin/strongroom ]] || return 0
    if ! systemctl is-active --quiet strongroom.service; then
        log "warning: strongroom.service is not running: no backup through the box before the upgrade"
        return 0
    fi
    [[ $SKIP_BACKUP -eq 0 ]] || {
        log "warning: no backup before the upgrade (--skip-backup)"
        return 0
    }
    log "backup before the upgrade (through the running box)"
    local rc=0
    runuser -u "$SERVICE_USER" -- "$VENV_DIR/bin/strongroom" backup \
        --config "$ETC_DIR/box.toml" </dev/null || rc=$?
    case $rc in
    0) ;;
    75) die "the box is locked: unlock it on the web UI so that the upgrade can back up first (or --skip-backup); nothing was changed" ;;
    *) die "the backup before the upgrade failed (exit $rc); nothing was changed (--skip-backup to go on anyway)" ;;
    esac
}

# Keep the venv in use and the previous one; older ones go (after the upgrade
# is known good: until then the switch-back needs the links it found).
prune_venvs() {
    local keep=() dir name
    [[ -L $ROOT$VENV_DIR ]] && keep+=("$(basename "$(readlink "$ROOT$VENV_DIR")")")
    [[ -L $ROOT$PREVIOUS_LINK ]] && keep+=("$(basename "$(readlink "$ROOT$PREVIOUS_LINK")")")
    for dir in "$ROOT$VENVS_DIR"/*; do
        [[ -d $dir ]] || continue
        name="$(basename "$dir")"
        if [[ " ${keep[*]} " != *" $name "* ]]; then
            rm -rf -- "$dir"
            log "removed the old virtualenv $VENVS_DIR/$name"
        fi
    done
}

install_venv() {
    [[ $DO_VENV -eq 1 ]] || return 0
    local digest id target
    digest="$(source_digest)"
    id="${digest:0:16}"
    target="venvs/$id"
    RELEASE="$target"
    adopt_plain_venv
    if [[ -L $ROOT$VENV_DIR && $(readlink "$ROOT$VENV_DIR") == "$target" &&
        -f $ROOT$OPT_DIR/$target/$COMPLETE_MARK ]]; then
        return 0
    fi
    if [[ ! -f $ROOT$OPT_DIR/$target/$COMPLETE_MARK ]]; then
        log "building $VENVS_DIR/$id (locked wheels, checked by hash)"
        build_venv "$ROOT$OPT_DIR/$target"
    fi
    pre_upgrade_backup
    BEFORE_VENV="$(readlink "$ROOT$VENV_DIR" 2>/dev/null || true)"
    BEFORE_PREVIOUS="$(readlink "$ROOT$PREVIOUS_LINK" 2>/dev/null || true)"
    switch_venv "$target"
    SWITCHED=1
    CHANGED=1
    UPGRADED=1
}

# This tree's unit files, kept with the release they belong to.
save_release_units() {
    [[ -n $RELEASE ]] || return 0
    local dest="$ROOT$OPT_DIR/$RELEASE/units" item
    for item in "${RELEASE_UNIT_FILES[@]}"; do
        [[ -e $SOURCE/$item ]] || continue
        # Compared first: a second run changes nothing.
        if ! diff -r -q "$SOURCE/$item" "$dest/$item" >/dev/null 2>&1; then
            rm -rf -- "${dest:?}/$item"
            mkdir -p "$(dirname "$dest/$item")"
            cp -R -- "$SOURCE/$item" "$dest/$item"
        fi
    done
}

# use_release_units REL: put back the unit files REL was installed with.
use_release_units() {
    local base="$ROOT$OPT_DIR/$1/units"
    if [[ ! -d $base/systemd ]]; then
        log "warning: $1 kept no unit files of its own (installed by an older installer): the current ones stay"
        return 0
    fi
    install_units "$base"
    if systemd_running; then
        systemctl daemon-reload
    fi
    log "installed the unit files of $1"
}

# The installer stopped between the switch and check_upgrade (on_exit in
# install.sh): the links go back as this run found them, so that the release
# that was running stays the one in use and running the installer again
# switches (and checks) afresh.
undo_switch() {
    [[ $SWITCHED -eq 1 ]] || return 0
    SWITCHED=0
    log "the install stopped before the new release was checked: going back to ${BEFORE_VENV:-no release}"
    set_link "$VENV_DIR" "$BEFORE_VENV"
    set_link "$PREVIOUS_LINK" "$BEFORE_PREVIOUS"
    [[ -z $BEFORE_VENV ]] || use_release_units "$BEFORE_VENV" ||
        log "warning: could not put back the unit files of $BEFORE_VENV"
    if systemd_running && systemctl is-active --quiet strongroom.service; then
        systemctl restart strongroom.service ||
            log "warning: strongroom.service did not restart: journalctl -u strongroom.service -b"
    fi
}

# systemd runs here (not a chroot, not a scratch root).
systemd_running() { live && [[ -d /run/systemd/system ]]; }

service_state() {
    systemctl show strongroom.service --property=ActiveState,MainPID | LC_ALL=C sort | tr '\n' ' '
}

# The service came up: `systemctl start/restart` returned (Type=notify: READY=1
# was sent) and UPGRADE_SETTLE_S seconds later it is still active under the
# same PID (a crash just after READY=1 is restarted under a new one).
came_up() {
    [[ $RESTART_FAILED -eq 0 ]] || return 1
    local first deadline=$((SECONDS + UPGRADE_SETTLE_S))
    first="$(service_state)"
    [[ $first == *"ActiveState=active "* ]] || return 1
    while [[ $SECONDS -lt $deadline ]]; do
        sleep 1
        [[ "$(service_state)" == "$first" ]] || return 1
    done
}

# After the restart: a new version that does not come up is switched back, the
# links as they were before this run, and the installer fails.
check_upgrade() {
    systemd_running || {
        SWITCHED=0
        return 0
    }
    if [[ $UPGRADED -eq 1 && -n $BEFORE_VENV ]] && ! came_up; then
        SWITCHED=0 # the switch-back is done here, with its own message
        local failed old new migrated=""
        failed="$(readlink "$VENV_DIR")"
        old="$(schema_of "$BEFORE_VENV")"
        new="$(schema_of "$failed")"
        # As --rollback: a newer schema means the failed release may have
        # migrated the archive (unattended mode opens it at start).
        if [[ -z $old || -z $new || $old -ne $new ]]; then
            migrated=" If the new version had already migrated the archive ($BEFORE_VENV reads schema ${old:-?}, $failed brought ${new:-?}), $BEFORE_VENV refuses to open it: restore the backup taken before the upgrade (docs/operations.md, 'Upgrades')."
        fi
        log "the new version ($failed) did not come up: going back to $BEFORE_VENV"
        set_link "$VENV_DIR" "$BEFORE_VENV"
        set_link "$PREVIOUS_LINK" "$BEFORE_PREVIOUS"
        use_release_units "$BEFORE_VENV"
        systemctl reset-failed strongroom.service 2>/dev/null || true
        RESTART_FAILED=0
        systemctl restart strongroom.service || RESTART_FAILED=1
        prune_venvs # the failed venv: nothing points at it any more
        if came_up; then
            die "upgrade failed: back on $BEFORE_VENV, which is running (why the new version failed: journalctl -u strongroom.service -b).$migrated"
        fi
        die "upgrade failed, and $BEFORE_VENV did not come up either: journalctl -u strongroom.service -b.$migrated"
    fi
    SWITCHED=0
    [[ $RESTART_FAILED -eq 0 ]] ||
        die "strongroom.service did not start: journalctl -u strongroom.service -b"
}

# The archive schema release venvs/X reads (nothing when it cannot be asked).
schema_of() {
    local python="$ROOT$OPT_DIR/$1/bin/python" answer
    [[ -x $python ]] || return 0
    answer="$("$python" -c 'from strongroom.archive.schema import SCHEMA_VERSION
print(SCHEMA_VERSION)' 2>/dev/null || true)"
    [[ $answer =~ ^[0-9]+$ ]] && printf '%s\n' "$answer"
    return 0
}

rollback() {
    local previous current old new
    previous="$(readlink "$ROOT$PREVIOUS_LINK" 2>/dev/null)" ||
        die "no previous version to go back to ($PREVIOUS_LINK is missing)"
    [[ -d $ROOT$OPT_DIR/$previous ]] || die "the previous version $previous is gone"
    current="$(readlink "$ROOT$VENV_DIR" 2>/dev/null || true)"
    old="$(schema_of "$previous")"
    new="$(schema_of "$current")"
    # Migrations only go forward: once the newer release has opened the archive
    # (at the first unlock after the upgrade) the older one refuses it.
    if [[ -n $old && -n $new && $old -lt $new && $FORCE -eq 0 ]]; then
        die "$previous reads archive schema $old, $current brought schema $new: once the box has been unlocked since the upgrade, $previous cannot open the archive. Nothing was changed. To go back anyway: --rollback --force, then restore the backup taken before the upgrade (docs/operations.md, 'Upgrades')"
    fi
    switch_venv "$previous"
    use_release_units "$previous"
    if systemd_running; then
        systemctl restart strongroom.service || RESTART_FAILED=1
        came_up || die "rolled back to $previous, but strongroom.service did not come up: journalctl -u strongroom.service -b"
    fi
    log "rolled back to $previous."
    if [[ -z $old || -z $new || $old -ne $new ]]; then
        log "If the newer version had already migrated the archive, the older one refuses"
        log "to open it: restore the backup taken before the upgrade (docs/operations.md, 'Upgrades')."
    fi
}
