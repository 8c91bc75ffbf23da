# shellcheck shell=bash disable=SC2034,SC2153
# Sourced by scripts/install.sh: --uninstall (keeps the records) and --purge.
# (the settings it reads belong to install.sh)

confirm_purge() {
    [[ $ASSUME_YES -eq 1 ]] && return 0
    [[ -t 0 ]] || die "--purge destroys every record; add --yes to confirm non-interactively"
    printf 'This destroys the archive in %s: every record, key and proof.\n' "$ROOT$DATA_DIR"
    printf 'Without a backup and the 24 words it cannot be recovered. Type "destroy": '
    local answer
    read -r answer
    [[ $answer == destroy ]] || die "not confirmed; nothing was destroyed"
}

uninstall() {
    if [[ $PURGE -eq 1 ]]; then
        confirm_purge
    fi
    if live; then
        systemctl disable --now --quiet "${ENABLED_UNITS[@]}" 2>/dev/null || true
        systemctl stop --quiet strongroom-fault.service 2>/dev/null || true
    fi
    remove_reach
    local unit
    for unit in "${UNITS[@]}"; do
        if [[ -e $ROOT$UNIT_DIR/$unit ]]; then
            rm -f "$ROOT$UNIT_DIR/$unit"
            log "removed $UNIT_DIR/$unit"
        fi
    done
    local dropin
    for dropin in "$WATCHDOG_DROPIN" "$TIME_SYNC_DROPIN" "$REACH_DROPIN"; do
        if [[ -e $ROOT$dropin ]]; then
            rm -f "$ROOT$dropin"
            log "removed $dropin"
        fi
    done
    # Our drop-in directory, unless the administrator put something else there.
    rmdir --ignore-fail-on-non-empty "$ROOT${TIME_SYNC_DROPIN%/*}" 2>/dev/null || true
    rmdir --ignore-fail-on-non-empty "$ROOT${REACH_DROPIN%/*}" 2>/dev/null || true
    reload_systemd_after_removal
    local rel
    if rel="$(boot_config_path)" && [[ -n "$(current_boot_block "$ROOT$rel")" ]]; then
        remove_boot_block "$ROOT$rel"
        log "removed the Strongroom block from $rel (effective after a reboot)"
    fi
    # Only what we put in /opt/strongroom: the source tree may live there too.
    local item
    for item in "$VENV_DIR" "$PREVIOUS_LINK" "$VENVS_DIR" "$OPT_DIR/docs" "$OPT_DIR/.source-sha256"; do
        if [[ -e $ROOT$item ]]; then
            rm -rf -- "$ROOT$item"
            log "removed $item"
        fi
    done
    rmdir -- "$ROOT$OPT_DIR" 2>/dev/null || true
    if [[ $PURGE -eq 1 ]]; then
        rm -rf -- "$ROOT$DATA_DIR" "$ROOT$ETC_DIR"
        log "destroyed $DATA_DIR and $ETC_DIR"
        if live && id -u "$SERVICE_USER" >/dev/null 2>&1; then
            userdel "$SERVICE_USER"
            log "removed user $SERVICE_USER"
        fi
    else
        log "kept the records in $DATA_DIR and the configuration in $ETC_DIR"
        log "(a later install picks them up again; --uninstall --purge destroys them)"
    fi
}

# systemd forgets the removed units. Where it is not PID 1 (a chroot, an image
# build, a container) there is nothing to reload: say so and finish the removal.
reload_systemd_after_removal() {
    live || return 0
    if [[ ! -d /run/systemd/system ]]; then
        log "warning: systemd is not running here (not PID 1): no daemon-reload; the removed units are forgotten at the next boot" >&2
        return 0
    fi
    systemctl daemon-reload ||
        log "warning: systemctl daemon-reload failed; the removed units are forgotten at the next boot" >&2
}

# Remote reach: our units stopped, our two torrc lines out (the rest of the
# administrator's torrc untouched), tor stopped unless tor.service is enabled
# (someone else's use of tor). Debian's tor package stays installed, like
# python3. The onion service's keys and the include file are state: kept by a
# plain uninstall (a reinstall keeps the address), destroyed by --purge.
remove_reach() {
    if live; then
        systemctl disable --now --quiet "${REACH_UNITS[@]}" 2>/dev/null || true
    fi
    local torrc="$ROOT$TORRC"
    if [[ -f $torrc ]] && grep -qxF -e "$TORRC_INCLUDE" -e "$TORRC_NOTE" "$torrc"; then
        local kept
        kept="$(mktemp)"
        grep -vxF -e "$TORRC_INCLUDE" -e "$TORRC_NOTE" "$torrc" >"$kept" || true
        cat "$kept" >"$torrc" # in place: the file keeps its owner and mode
        rm -f "$kept"
        log "removed '$TORRC_INCLUDE' from $TORRC"
        if live && [[ -d /run/systemd/system ]]; then
            if systemctl --quiet is-enabled tor.service 2>/dev/null; then
                systemctl try-reload-or-restart tor@default.service || true
            else
                systemctl stop tor@default.service 2>/dev/null || true
            fi
        fi
    fi
    if [[ $PURGE -eq 1 ]]; then
        local item
        for item in "$REACH_CONF" "$TOR_DATA/strongroom" "$REACH_SOCKET_DIR"; do
            if [[ -e $ROOT$item ]]; then
                rm -rf -- "$ROOT$item"
                log "destroyed $item"
            fi
        done
    fi
}
