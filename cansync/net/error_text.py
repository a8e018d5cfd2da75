"""One short line from an error whose text is a Rust error chain (the iroh bindings' errors).

The bindings' messages span lines: a "Caused by:" block, Rust source paths in parentheses, sometimes a
debug struct. In a log line or an error message they read as noise; `one_line_error` keeps the words.
"""

from __future__ import annotations

import re

_SOURCE_PATH = re.compile(r"\s*\((?:[^()]*?/)?[^()/]+\.rs:\d+(?::\d+)?\)")  # " (/x/y/endpoint.rs:1076:20)"
_BARE_LOCATION = re.compile(r"^(?:at\s+)?\S*\.rs:\d+(?::\d+)?$")  # a line that is only a source location
_ENUMERATED = re.compile(r"^\d+:\s*")  # anyhow's "0: " before each cause
_TYPE_LABEL = re.compile(r"^[A-Za-z_][\w]*(?:::[A-Za-z_]\w*)+$")  # ConnectError::Connecting: a variant, no words
_DEBUG_REASON = re.compile(r'reason:\s*"((?:[^"\\]|\\.)*)"')  # TransportError(Error { ..., reason: "..." })
_SECTION_ENDS = ("Location:", "Stack backtrace:", "Backtrace:")
ERROR_LINE_LIMIT = 200


def one_line_error(error: BaseException | str, limit: int = ERROR_LINE_LIMIT) -> str:
    """A short single line for an error whose text is a Rust error chain (or any multi-line text).

    Source paths, "Caused by:" headers, backtraces and bare variant names are dropped; the remaining
    messages are joined with ": ", outermost first, and cut at `limit` characters.
    """
    text = full_error_text(error)
    reason = _DEBUG_REASON.search(text)
    if reason is not None and "\n" not in text:
        text = reason.group(1).replace('\\"', '"')
    parts: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(_SECTION_ENDS):
            break  # what follows is where in Rust it happened, never what happened
        line = _ENUMERATED.sub("", _SOURCE_PATH.sub("", line)).strip().rstrip(":").strip()
        if not line or line == "Caused by" or _BARE_LOCATION.match(line):
            continue
        if line not in parts:
            parts.append(line)
    worded = [p for p in parts if not _TYPE_LABEL.match(p)]
    short = ": ".join(worded or parts) or type(error).__name__
    return short if len(short) <= limit else short[: limit - 1] + "…"


def full_error_text(error: BaseException | str) -> str:
    """The whole text of an error, every line of a Rust error chain included (for DEBUG logs)."""
    if isinstance(error, str):
        return error
    message = getattr(error, "message", None)  # iroh.IrohError keeps its text behind message()
    if callable(message):
        try:
            text = message()
        except Exception:  # noqa: BLE001 - a broken message() must not hide the error being reported
            text = None
        if isinstance(text, str) and text:
            return text
    return str(error) or type(error).__name__
