"""Counts the inputs each fuzz test generated and prints the totals at the end of the run."""

from __future__ import annotations

from collections import Counter

import pytest

INPUT_COUNTS: Counter[str] = Counter()


class InputCounter:
    def __init__(self, test_id: str) -> None:
        self._test_id = test_id

    def add(self, n: int = 1) -> None:
        INPUT_COUNTS[self._test_id] += n


@pytest.fixture
def inputs(request: pytest.FixtureRequest) -> InputCounter:
    """Call inputs.add() once per generated input sent to the code under test."""
    return InputCounter(request.node.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not INPUT_COUNTS:
        return
    terminalreporter.section("fuzz inputs generated")
    for test_id, count in sorted(INPUT_COUNTS.items()):
        terminalreporter.write_line(f"{count:7d}  {test_id}")
    terminalreporter.write_line(f"{sum(INPUT_COUNTS.values()):7d}  total")
