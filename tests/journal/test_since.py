"""--since: ISO-8601, epoch ms, or a duration ago."""

from __future__ import annotations

from datetime import datetime

import pytest

from cansync.journal.since import parse_since

NOW = 1_800_000_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", NOW - 90_000),
        ("15m", NOW - 900_000),
        ("2h", NOW - 7_200_000),
        ("3d", NOW - 3 * 86_400_000),
        ("1.5h", NOW - 5_400_000),
        ("250ms", NOW - 250),
        ("1700000000123", 1_700_000_000_123),
        ("2026-11-26T09:30:00Z", 1_795_685_400_000),
        ("2026-11-26T10:30:00+01:00", 1_795_685_400_000),
        ("2026-11-26T09:30:00.250Z", 1_795_685_400_250),
    ],
)
def test_parse_since(text: str, expected: int) -> None:
    assert parse_since(text, NOW) == expected


def test_a_naive_time_is_local_time() -> None:
    expected = int(datetime(2026, 11, 26, 9, 30).astimezone().timestamp() * 1000)
    assert parse_since("2026-11-26T09:30:00", NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "5 parsecs", "-3h", ""])
def test_nonsense_is_refused_with_the_formats(text: str) -> None:
    with pytest.raises(ValueError, match="ISO-8601 .* epoch milliseconds .* duration"):
        parse_since(text, NOW)
