"""The id shapes the core trusts: 64 lower-case hex digits, a str and nothing else."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cansync.core.ids import ASSET_ID_LENGTH, ENDPOINT_ID_LENGTH, is_asset_id, is_endpoint_id

CHECKS = (is_asset_id, is_endpoint_id)
SHAPE = re.compile(r"[0-9a-f]{64}", re.ASCII)


class _Text(str):
    pass


def test_both_ids_are_64_digits() -> None:
    assert ASSET_ID_LENGTH == ENDPOINT_ID_LENGTH == 64


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("text", ["0" * 64, "f" * 64, "0123456789abcdef" * 4, "ab" * 32])
def test_valid_ids(check: object, text: str) -> None:
    assert callable(check) and check(text)


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize(
    "value",
    [
        "",
        "a" * 63,
        "a" * 65,
        "A" * 64,
        "ab" * 31 + "aB",
        "g" * 64,
        "ab" * 31 + "a ",
        " " + "a" * 63,
        "ab" * 31 + "a\n",
        "ab" * 31 + "a\x00",
        "\uff10" * 64,  # full-width digits: digits to str.isdigit, not hex
        "\u0660" * 64,  # Arabic-Indic digits
        "0x" + "a" * 62,
        b"a" * 64,
        bytearray(b"a" * 64),
        None,
        0,
        int("1" * 64, 16),
        ["a"] * 64,
        _Text("a" * 64),  # a str subclass is not the str the journal writes
    ],
)
def test_refused_values(check: object, value: object) -> None:
    assert callable(check) and check(value) is False


@given(text=st.text(alphabet="0123456789abcdefABCDEFgx \n", min_size=60, max_size=68))
def test_an_id_is_exactly_64_lower_case_hex_digits(text: str) -> None:
    expected = SHAPE.fullmatch(text) is not None
    assert is_asset_id(text) is expected
    assert is_endpoint_id(text) is expected


@given(raw=st.binary(min_size=32, max_size=32))
def test_the_hex_of_32_bytes_is_an_id_and_its_upper_case_is_not(raw: bytes) -> None:
    assert is_asset_id(raw.hex()) and is_endpoint_id(raw.hex())
    upper = raw.hex().upper()
    assert is_asset_id(upper) is (upper == raw.hex())  # only an all-digit hex is the same in upper case
