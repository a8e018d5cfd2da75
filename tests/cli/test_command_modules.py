"""`cansync COMMAND` builds the parser of that command alone: the name -> module table must stay true."""

from __future__ import annotations

import argparse

import pytest

from cansync.cli import COMMAND_MODULES, build_parser


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(subparsers.choices)


def test_the_whole_parser_has_every_command_of_the_table_in_its_order() -> None:
    assert _commands(build_parser()) == list(COMMAND_MODULES)


@pytest.mark.parametrize("command", list(COMMAND_MODULES))
def test_a_named_command_registers_itself_alone(command: str) -> None:
    assert _commands(build_parser(command)) == [command]


def test_an_unknown_or_missing_command_gets_the_whole_parser() -> None:
    assert _commands(build_parser("teleport")) == list(COMMAND_MODULES)
    assert _commands(build_parser("--help")) == list(COMMAND_MODULES)
    assert _commands(build_parser(None)) == list(COMMAND_MODULES)


def test_a_command_parses_the_same_with_either_parser() -> None:
    argv = ["journal", "inspect", "--data-dir", "/x", "--hash", "ab", "--kind", "asset_received", "--json"]
    assert vars(build_parser().parse_args(argv)) == vars(build_parser("journal").parse_args(argv))
