"""Pairing phones with the box: button window, comparison codes, QR, admission."""
