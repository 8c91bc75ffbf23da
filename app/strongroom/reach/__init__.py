"""Remote reach: an opt-in Tor onion service, client-authorised per phone.

Off by default. `keys` makes the per-phone x25519 client-auth keys and tor's file
formats; `torrc` the onion-service configuration; `helper` the small privileged
process that owns tor's files and reloads tor; `tor_control` reads tor's state;
`service` is the box's side (the onion listener, on/off, grants at pairing).
"""
