"""The appliance edge: talking to systemd (sd_notify), reading the board's health,
and announcing the box on the LAN (mDNS)."""
