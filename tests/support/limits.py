"""Argon2id costs for tests: the keystore's keyword arguments, typed so `**` cannot fill `owner`."""

from __future__ import annotations

from typing import TypedDict


class ArgonLimits(TypedDict):
    opslimit: int
    memlimit: int
