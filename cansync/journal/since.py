"""Parsing `--since`: an ISO-8601 time, epoch milliseconds, or a duration ago such as 90s, 15m, 2h, 3d."""

from __future__ import annotations

import re
from datetime import datetime

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$", re.IGNORECASE)
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_since(text: str, now_ms: int) -> int:
    """The epoch-ms instant `text` names. A naive ISO time is taken as this machine's local time."""
    value = text.strip()
    if value.isdigit():
        return int(value)
    match = _DURATION.match(value)
    if match:
        amount, unit = float(match.group(1)), match.group(2).lower()
        return now_ms - int(amount * _UNIT_MS[unit])
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith(("Z", "z")) else value)
    except ValueError:
        raise ValueError(
            f"--since {text!r}: give an ISO-8601 time (2026-11-26T09:30:00Z), epoch milliseconds "
            "(1795686641075), or a duration ago (90s, 15m, 2h, 3d)"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()  # local time, as a person typing a time means it
    return int(when.timestamp() * 1000)
