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
#   4. goes back by itself if the new version does not come up.
# `install.sh --rollback` switches back to venv.previous by hand.

readonly VENVS_DIR="$OPT_DIR/venvs"
readonly PREVIOUS_LINK="$OPT_DIR/venv.previous"
readonly LOCK_FILE="requirements-aarch64.lock"
readonly COMPLETE_MARK=".strongroom-complete"

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

# switch_venv TARGET: point venv at venvs/TARGET (relative), the old one becomes previous.
switch_venv() {
    local target="$1" link="$ROOT$VENV_DIR" old=""
    if [[ -L $link ]]; then
        old="$(readlink "$link")"
    fi
    [[ $old == "$target" ]] && return 0
    ln -sfn "$target" "$link.tmp"
    mv -Tf "$link.tmp" "$link"
    if [[ -n $old ]]; then
        ln -sfn "$old" "$ROOT$PREVIOUS_LINK.tmp"
        mv -Tf "$ROOT$PREVIOUS_LINK.tmp" "$ROOT$PREVIOUS_LINK"
    fi
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
    systemctl is-active --quiet strongroom.service || return 0
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

# Keep the venv in use and the previous one; older ones go.
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
    switch_venv "$target"
    prune_venvs
    CHANGED=1
    UPGRADED=1
}

# After the restart: a new version that does not come up is switched back.
check_upgrade() {
    [[ $UPGRADED -eq 1 ]] || return 0
    live || return 0
    [[ -L $PREVIOUS_LINK ]] || return 0
    sleep 10
    if ! systemctl is-active --quiet strongroom.service; then
        log "the new version did not start: going back"
        rollback
        die "upgrade rolled back; see journalctl -u strongroom -b"
    fi
}

rollback() {
    local previous
    previous="$(readlink "$ROOT$PREVIOUS_LINK" 2>/dev/null)" ||
        die "no previous version to go back to ($PREVIOUS_LINK is missing)"
    [[ -d $ROOT$OPT_DIR/$previous ]] || die "the previous version $previous is gone"
    switch_venv "$previous"
    on_live_system systemctl restart strongroom.service
    log "rolled back to $previous. If the newer version had already migrated the"
    log "archive, the older one refuses to open it: restore the backup taken"
    log "before the upgrade (docs/operations.md, 'Restore')."
}
