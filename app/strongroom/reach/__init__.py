"""Remote reach: an opt-in Tor onion service, client-authorised per phone.

Off by default. `keys` makes the per-phone x25519 client-auth keys and tor's file
formats; `torrc` the onion-service configuration; `tor_files` what the helper does
to tor's files; `helper` the small privileged process that owns them and reloads
tor; `tor_control` reads tor's state; `settings` is the box's reach.json;
`listener` the box's onion socket (only /peer); `service` the box's side (on/off,
grants at pairing, revocation, rotation); `archived_key` keeps the service's key in
the archive; `control` the CLI's routes; `phone` the phone's side (SOCKS5).
"""
