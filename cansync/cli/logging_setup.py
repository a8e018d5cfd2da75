"""How every cansync command logs: our lifecycle and summary lines at INFO, other libraries' chatter at DEBUG.

`configure_logging(level, log_format)` sets up the root logger once per process (calling it again
replaces what it set before). By default the libraries that log one line per request or per step
(httpx, httpcore, aiosqlite, alembic, asyncio, SQLAlchemy, aiohttp's access log) are held at WARNING;
`--log-level DEBUG` lets them through. `log_format="json"` writes one JSON object per line (time,
level, logger, message, and the exception text when there is one) for log shippers.

Two helpers for callers that log errors:
- `one_line_error(exc)` turns a multi-line error chain from the iroh bindings (Rust source paths,
  "Caused by:" blocks, debug structs) into one short line (it lives in cansync.net.error_text, so the
  transport below can use it too).
- `OutageLog` says a repeated problem once per outage (and again at most every few minutes while it
  lasts), then once when it is over.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any, Literal

from cansync.net.error_text import ERROR_LINE_LIMIT, one_line_error
from cansync.outages import OutageLog

__all__ = [
    "ERROR_LINE_LIMIT",
    "LOG_FORMATS",
    "JsonLineFormatter",
    "OutageLog",
    "QUIET_LOGGERS",
    "configure_logging",
    "one_line_error",
]

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

QUIET_LOGGERS = ("httpx", "httpcore", "aiosqlite", "alembic", "asyncio", "sqlalchemy", "aiohttp.access")
"""Loggers that speak per request or per step: held at WARNING unless the level asked for is DEBUG."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_HANDLER_MARK = "_cansync_handler"  # tells our handler apart from others (pytest's, an embedding app's)


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record: time (ISO 8601 UTC, ms), level, logger, message, exception text."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, Any] = {
            "time": when.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(
    level: str | int = "INFO", log_format: str = "text", *, stream: IO[str] | None = None
) -> logging.Handler:
    """Point the root logger at `stream` (stderr) in `log_format`, at `level`; quiet the chatty libraries.

    Returns the handler it installed (tests and embedders may remove it).
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonLineFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in QUIET_LOGGERS:
        # NOTSET: inherit the root's DEBUG. Set every time, so a second call can quiet them again.
        logging.getLogger(name).setLevel(logging.NOTSET if numeric <= logging.DEBUG else logging.WARNING)
    logging.captureWarnings(True)
    return handler
