"""Turning stored rows back into Events, fast: replay and read decode every row of the journal.

Two costs dominate a million-row replay besides the fold itself: parsing each row's JSON data and
building the Event. Parsing goes through orjson (with the check below, about three times the stdlib's
speed on journal rows) wherever it reads exactly what the stdlib reads. It does not for integers
outside 64 bits (it turns them into floats, silently), nor for text it refuses that the stdlib
accepts (1e400, lone surrogates): such text is parsed by the stdlib, which also words the error for
text that is not JSON at all. So a row decodes to exactly the values, and fails with exactly the
message, it did before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

import orjson

from cansync.core.events import HASH_KINDS, PEER_KINDS, Event, EventKind

# kind text -> (kind, needs a peer, needs a hash): one dict look-up instead of the enum's slower lookup
# and two frozenset tests that each hash the enum member through a Python-level __hash__
_KINDS: dict[str, tuple[EventKind, bool, bool]] = {
    kind.value: (kind, kind in PEER_KINDS, kind in HASH_KINDS) for kind in EventKind
}


# An integer orjson cannot hold (below -2**63 or from 2**64 up) is a number token of at least 19 digits,
# and a JSON number token starts the text or follows "[", ",", ":" or whitespace (then maybe a "-").
# One translate marks those places "|" and every digit "0"; two finds then look for such a token. A
# hex digest inside a string follows a quote and does not match; a false match only means the
# stdlib parses that text: slower, never wrong. (A regex search is 3-5 times slower.)
_LONG = 19
_DIGITS = b"0123456789"
_MARK_NUMBER_STARTS = bytes.maketrans(b"0123456789[,: \t\n\r|", b"0000000000" + b"|" * 7 + b"x")
_LONG_INT = b"|" + b"0" * _LONG
_LONG_NEGATIVE_INT = b"|-" + b"0" * _LONG
_LONG_AT_START = (_LONG_INT[1:], _LONG_NEGATIVE_INT[1:])


def _may_hold_a_long_integer(raw: bytes) -> bool:
    if len(raw) - len(raw.translate(None, _DIGITS)) < _LONG:
        return False  # fewer digits in all than such a number has: most rows, settled in ~60 ns
    marked = raw.translate(_MARK_NUMBER_STARTS)
    return _LONG_INT in marked or _LONG_NEGATIVE_INT in marked or marked.startswith(_LONG_AT_START)


class RowDecodeError(ValueError):
    """A stored row that is not an Event (the caller names the file and seq)."""


def load_json(text: str | bytes) -> Any:
    """Parse JSON text as the stdlib would (same values, same error messages), at orjson's speed."""
    try:
        raw = text.encode() if type(text) is str else text
        fits_orjson = type(raw) is bytes and not _may_hold_a_long_integer(raw)
    except UnicodeEncodeError:  # a lone surrogate
        fits_orjson = False
    if fits_orjson:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)  # the stdlib's value, or its error (a TypeError for what is not text)


def decode_row(row: Sequence[Any]) -> Event:
    """The Event of one (seq, time_ms, kind, peer, hash, data) row; RowDecodeError if it is not one.

    Checks what Event's own constructor checks (a known kind, the peer and hash the kind needs), then
    builds it with fewer steps than the dataclass __init__ plus __post_init__ (on 200k bench rows,
    JSON parse included: about 1.2 us a row, against about 2 with json.loads and Event(...)).
    """
    seq, time_ms, kind_text, peer, hash_, data = row
    try:
        payload = load_json(data)
    except (ValueError, TypeError) as exc:
        raise RowDecodeError(str(exc)) from exc
    if type(payload) is not dict:
        raise RowDecodeError(f"data is a JSON {type(payload).__name__}, not an object")
    known = _KINDS.get(kind_text)
    if known is None:
        raise RowDecodeError(f"{kind_text!r} is not a valid EventKind")
    kind, needs_peer, needs_hash = known
    if needs_peer and not peer:
        raise RowDecodeError(f"{kind} needs a peer")
    if needs_hash and not hash_:
        raise RowDecodeError(f"{kind} needs an asset hash")
    return build_event(kind, peer, hash_, payload, seq, time_ms)


_EVENT_FIELDS = ("kind", "peer", "hash", "data", "seq", "time_ms")
_new_event = object.__new__
_set_kind, _set_peer, _set_hash, _set_data, _set_seq, _set_time = (
    Event.__dict__[name].__set__ for name in _EVENT_FIELDS
)


def build_event(
    kind: EventKind, peer: str | None, hash_: str | None, data: Mapping[str, Any], seq: int, time_ms: int
) -> Event:
    """An Event from fields already known good (read back and checked, or copied from a checked Event).

    Event is a frozen slots dataclass: its slot descriptors set the fields, as its own __init__ does,
    minus the default handling and __post_init__'s checks.
    """
    event = _new_event(Event)
    _set_kind(event, kind)
    _set_peer(event, peer)
    _set_hash(event, hash_)
    _set_data(event, data)
    _set_seq(event, seq)
    _set_time(event, time_ms)
    return event


def _check_event_shape() -> None:
    # If Event gains or renames a field, build_event would leave it unset: fail at import, not at replay.
    found = tuple(f.name for f in fields(Event))
    if found != _EVENT_FIELDS:
        raise ImportError(f"cansync.journal.codec builds Events with fields {_EVENT_FIELDS}, but Event has {found}")


_check_event_shape()
