"""Asset ids packed for snapshots: 32 raw bytes each, base64 in the JSON, instead of 64 hex characters.

A snapshot of a million-asset state holds a million ids or more; written as JSON strings they are
about 70 MB to parse, packed about 43 MB of base64 that decodes in C. Ids come back interned, so every
set of the state holding one asset holds the same string object.
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Iterable

ID_BYTES = 32


def pack_ids(ids: Iterable[str]) -> str:
    return base64.b64encode(bytes.fromhex("".join(ids))).decode("ascii")


def unpack_ids(text: str) -> list[str]:
    raw = base64.b64decode(text, validate=True)
    if len(raw) % ID_BYTES:
        raise ValueError(f"packed ids of {len(raw)} bytes, not a multiple of {ID_BYTES}")
    hexed = raw.hex()
    intern = sys.intern
    return [intern(hexed[i : i + 2 * ID_BYTES]) for i in range(0, len(hexed), 2 * ID_BYTES)]


def pack_raw_ids(ids: list[bytes]) -> str:
    return base64.b64encode(b"".join(ids)).decode("ascii")


def unpack_raw_ids(text: str) -> list[bytes]:
    raw = base64.b64decode(text, validate=True)
    if len(raw) % ID_BYTES:
        raise ValueError(f"packed ids of {len(raw)} bytes, not a multiple of {ID_BYTES}")
    return [raw[i : i + ID_BYTES] for i in range(0, len(raw), ID_BYTES)]


def pack_numbers(numbers: Iterable[int]) -> str:
    return base64.b64encode(array("Q", numbers).tobytes()).decode("ascii")


def unpack_numbers(text: str) -> list[int]:
    packed = array("Q")
    packed.frombytes(base64.b64decode(text, validate=True))
    return packed.tolist()
