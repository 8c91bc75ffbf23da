"""Strongroom: the practice's own always-on peer and sealed archive."""

__version__ = "0.1.0"
PROTOCOL_VERSION = 1
