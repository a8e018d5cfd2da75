"""Hostile values for fields that reach the store: path-like names, control characters, extremes."""

from __future__ import annotations

import hashlib

from hypothesis import strategies as st

from .proto_strategies import PROTO_TEXT

PATH_LIKE = [
    "../../etc/passwd",
    "..",
    ".",
    "../",
    "..\\..\\windows\\system32",
    "/etc/passwd",
    "a/b",
    "a\\b",
    "sub/../../../escape",
    "....//....//x",
    "C:\\boot.ini",
    "..%2f..%2fx",
]
ODD_TEXT = [
    "",
    " ",
    "nul\x00byte",
    "\x00",
    "line\nbreak",
    "tab\there",
    "\x7f",
    "\u202eevil.txt",
    "😀",
    "a,b,,c",
    ",",
    "CON",
    "x" * 129,
    "y" * 1100,
    "z" * 70_000,
]
HOSTILE_TEXT = st.one_of(st.sampled_from(PATH_LIKE + ODD_TEXT), PROTO_TEXT)
BENIGN_WORD = st.text(st.characters(min_codepoint=ord("a"), max_codepoint=ord("z")), min_size=1, max_size=12)

INT64_EDGES = [-(2**63), -(2**31), -1, 0, 1, 2**31, 2**53 + 1, 2**63 - 1]
HOSTILE_INT64 = st.one_of(st.sampled_from(INT64_EDGES), st.integers(-(2**63), 2**63 - 1))
HOSTILE_UINT64 = st.one_of(st.sampled_from([0, 1, 2**32, 2**63, 2**64 - 1]), st.integers(0, 2**64 - 1))

# query values a `since=` parameter may carry: non-numbers, negatives, past int64, odd int() syntaxes
HOSTILE_SINCE = st.one_of(
    st.sampled_from(
        ["", " ", "abc", "-1", "-0", "1e3", "0x10", "1.5", "+5", " 7 ", "1_000", "\u0661\u0662", "NaN", "null"]
        + [str(2**63), str(2**64), str(10**30), str(-(2**63) - 1), "9" * 400]
    ),
    st.integers(-(2**70), 2**70).map(str),
    st.text(max_size=12),
)

MALFORMED_HASHES = [
    "",
    "A" * 64,
    "g" * 64,
    "a" * 63,
    "a" * 65,
    "../" + "a" * 61,
    "a" * 32,
    " " + "a" * 63,
    "a" * 63 + "\n",
    "a" * 63 + "\x00",
]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_choices(known: list[str]) -> st.SearchStrategy[str]:
    """Hashes of held assets, well-formed unknown hashes, and strings that are no hash at all."""
    unknown = st.binary(min_size=32, max_size=32).map(bytes.hex)
    return st.one_of(st.sampled_from(known), unknown, st.sampled_from(MALFORMED_HASHES), PROTO_TEXT)
