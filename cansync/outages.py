"""Saying a lasting problem once: when it starts, rarely while it lasts, and once when it ends.

Used by every layer that retries something that keeps failing (the store, a relay, a wrong key), so an
outage costs a few log lines, not one per attempt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Outage:
    started: float
    last_said: float
    count: int = 1  # occurrences since the outage began
    said_count: int = 1  # occurrences when we last said it


class OutageLog:
    """Logs a problem once when it starts, at most every `repeat_secs` while it lasts, and once when it ends.

        outages = OutageLog(log, repeat_secs=600)
        outages.problem("store", "store %s unreachable: %s", url, err)   # first time: logged
        outages.problem("store", ...)                                     # again soon: counted, not logged
        outages.resolved("store", "store %s answers again", url)          # logged once, at INFO

    Keys name the problem (a peer id, a route, "sync_api_key"); one key's outage never hides another's.
    """

    def __init__(
        self, logger: logging.Logger, *, repeat_secs: float = 600.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._logger = logger
        self._repeat_secs = repeat_secs
        self._clock = clock
        self._outages: dict[str, _Outage] = {}

    def active(self, key: str) -> bool:
        return key in self._outages

    def problem(self, key: str, message: str, *args: object, level: int = logging.WARNING) -> bool:
        """Note one occurrence of `key`'s problem; returns True when it was logged this time."""
        now = self._clock()
        outage = self._outages.get(key)
        if outage is None:
            self._outages[key] = _Outage(started=now, last_said=now)
            self._logger.log(level, message, *args)
            return True
        outage.count += 1
        if now - outage.last_said < self._repeat_secs:
            return False
        repeats = outage.count - outage.said_count
        outage.last_said, outage.said_count = now, outage.count
        self._logger.log(
            level,
            message + " (still so: %d more time(s) since it was last said; failing for %.0f min)",
            *args,
            repeats,
            (now - outage.started) / 60,
        )
        return True

    def resolved(self, key: str, message: str | None = None, *args: object, level: int = logging.INFO) -> bool:
        """End `key`'s outage; logs `message` (if given) only when there was one. Returns True if there was."""
        outage = self._outages.pop(key, None)
        if outage is None:
            return False
        if message is not None:
            self._logger.log(level, message, *args)
        return True
