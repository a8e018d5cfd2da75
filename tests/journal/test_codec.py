"""The fast decoding and chaining paths give exactly what the plain stdlib / dataclass paths give."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cansync.core.events import HASH_KINDS, PEER_KINDS, Event, EventKind, InvalidEvent
from cansync.journal.chain import _ENCODER, canonical_json, event_digest
from cansync.journal.codec import RowDecodeError, build_event, decode_row, load_json

from .conftest import asset_hash, peer_id

# JSON values as the stdlib reads them back: any text (lone surrogates too), integers past 64 bits
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
_JSON_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=_JSON_VALUES, ascii_only=st.booleans())
def test_load_json_reads_what_the_stdlib_reads(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    # repr, not ==: 2**70 == float(2**70), but a journal must give back the int it was given
    assert repr(load_json(text)) == repr(json.loads(text))
    if ascii_only:
        assert repr(load_json(text.encode())) == repr(json.loads(text))  # the bytes a BLOB column would give


@pytest.mark.parametrize(
    "number", [2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**70, -(2**63), -(2**63) - 1, -(2**70), 10**18, 10**19]
)
@pytest.mark.parametrize("template", ["{}", "[{}]", '{{"a":{}}}', '{{"a": [1,\n\t{}]}}', '{{"h":"x{}","n":{}}}'])
def test_load_json_keeps_integers_of_any_size_exact(number: int, template: str) -> None:
    text = template.format(number, number)
    assert repr(load_json(text)) == repr(json.loads(text))
    assert repr(load_json(text.encode())) == repr(json.loads(text))


@pytest.mark.parametrize("text", ["{not json", "[1, 2", "", '{"a": }', '{"a": 1} x', "nul"])
def test_load_json_words_errors_as_the_stdlib_does(text: str) -> None:
    with pytest.raises(ValueError) as stdlib:
        json.loads(text)
    with pytest.raises(ValueError) as ours:
        load_json(text)
    assert str(ours.value) == str(stdlib.value)


def test_load_json_of_a_value_that_is_not_text_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        load_json(None)  # type: ignore[arg-type]  # a NULL data column


def _row_for(kind: EventKind, seq: int, data: dict[str, Any]) -> tuple[Any, ...]:
    peer = peer_id(seq) if kind in PEER_KINDS else None
    hash_ = asset_hash(seq) if kind in HASH_KINDS else None
    return (seq, 1_700_000_000_000 + seq, kind.value, peer, hash_, canonical_json(data))


@pytest.mark.parametrize("kind", list(EventKind))
def test_decode_row_builds_the_same_event_as_the_constructor(kind: EventKind) -> None:
    data = {"direction": "in", "size": 2**70, "hashes": ["a", "b"], "nested": {"x": [1.5, None, True]}}
    row = _row_for(kind, 7, data)
    decoded = decode_row(row)
    expected = Event(kind, row[3], row[4], data, 7, row[1])
    assert decoded == expected
    assert type(decoded) is Event and decoded.kind is kind and type(decoded.data) is dict
    assert type(decoded.data["size"]) is int and decoded.data["size"] == 2**70
    with pytest.raises(AttributeError):  # still frozen
        decoded.seq = 8  # type: ignore[misc]


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ((3, 1, "peer_teleported", None, None, "{}"), "'peer_teleported' is not a valid EventKind"),
        ((3, 1, "peer_connected", None, None, "{}"), "peer_connected needs a peer"),
        ((3, 1, "peer_connected", "", None, "{}"), "peer_connected needs a peer"),
        ((3, 1, "local_asset_seen", None, None, "{}"), "local_asset_seen needs an asset hash"),
        ((3, 1, "local_asset_seen", None, "ab", "[1]"), "data is a JSON list, not an object"),
        ((3, 1, "local_asset_seen", None, "ab", "{oops"), "Expecting property name"),
        ((3, 1, "local_asset_seen", None, "ab", None), "must be str"),
    ],
)
def test_decode_row_refuses_what_the_constructor_refuses(row: tuple[Any, ...], problem: str) -> None:
    with pytest.raises(RowDecodeError, match=problem):
        decode_row(row)


def test_decode_row_checks_match_the_event_constructor() -> None:
    # the kind -> (needs peer, needs hash) table must agree with Event.__post_init__ for every kind
    for kind in EventKind:
        for peer, hash_ in [(None, None), ("p", None), (None, "h"), ("p", "h")]:
            try:
                Event(kind, peer, hash_)
                constructor_ok = True
            except InvalidEvent:
                constructor_ok = False
            try:
                decode_row((1, 1, kind.value, peer, hash_, "{}"))
                decoder_ok = True
            except RowDecodeError:
                decoder_ok = False
            assert decoder_ok == constructor_ok, (kind, peer, hash_)


def test_build_event_equals_the_constructor() -> None:
    built = build_event(EventKind.ASSET_RECEIVED, peer_id(1), asset_hash(1), {"timestamp": 5}, 9, 10)
    assert built == Event(EventKind.ASSET_RECEIVED, peer_id(1), asset_hash(1), {"timestamp": 5}, 9, 10)
    assert built.journaled(11, 12).seq == 11  # an ordinary Event in every way


_TEXT_OR_NONE = st.none() | st.text()


@settings(max_examples=300, deadline=None)
@given(
    seq=st.integers(min_value=0, max_value=2**80),
    time_ms=st.integers(min_value=0, max_value=2**63),
    kind=st.text(),
    peer=_TEXT_OR_NONE,
    hash_=_TEXT_OR_NONE,
    data=st.dictionaries(st.text(max_size=6), _SCALARS, max_size=4),
)
def test_event_digest_is_the_documented_canonical_json(
    seq: int, time_ms: int, kind: str, peer: str | None, hash_: str | None, data: dict[str, Any]
) -> None:
    prev = hashlib.sha256(b"prev").digest()
    data_json = canonical_json(data)
    whole = _ENCODER.encode([seq, time_ms, kind, peer, hash_, data])
    assert whole == canonical_json([seq, time_ms, kind, peer, hash_, data])
    assert (
        event_digest(prev, seq, time_ms, kind, peer, hash_, data_json) == hashlib.sha256(prev + whole.encode()).digest()
    )


def test_event_digest_of_values_off_the_fast_path_is_unchanged() -> None:
    prev = bytes(32)
    # an int subclass and a non-text peer go through the general encoder, as before
    for args in [(True, 2, "k", None, None), (1, 2, "k", 5, None), (1, 2.0, "k", None, "h")]:
        whole = _ENCODER.encode([*args, {}])
        assert event_digest(prev, *args, "{}") == hashlib.sha256(prev + whole.encode()).digest()  # type: ignore[arg-type]
