"""Argon2id cost parameters as the tests pass them (`**limits`) to keystores and boxes.

A TypedDict, not a dict[str, int]: spread into a call that also takes other
keyword arguments (an owner's name), only these two names may be filled.
"""

from __future__ import annotations

from typing import TypedDict


class ArgonLimits(TypedDict):
    opslimit: int
    memlimit: int
