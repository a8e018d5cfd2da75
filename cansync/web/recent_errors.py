"""The agent's recent problems, as the dashboard lists them: every WARNING or worse that cansync logs,
one short line each, the newest few kept."""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from cansync.net.error_text import one_line_error

KEPT = 50


class RecentErrors(logging.Handler):
    def __init__(self, kept: int = KEPT) -> None:
        super().__init__(level=logging.WARNING)
        self._entries: deque[dict[str, Any]] = deque(maxlen=kept)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = one_line_error(record.getMessage())
        except Exception:  # noqa: BLE001 - a record that cannot be formatted must not break logging
            message = str(record.msg)
        self._entries.append({"time_ms": int(record.created * 1000), "message": message})

    def entries(self) -> list[dict[str, Any]]:
        """Oldest first, as the status schema lists them."""
        return list(self._entries)

    def install(self, logger_name: str = "cansync") -> RecentErrors:
        logging.getLogger(logger_name).addHandler(self)
        return self

    def remove(self, logger_name: str = "cansync") -> None:
        logging.getLogger(logger_name).removeHandler(self)
