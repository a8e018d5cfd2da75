"""Windows' naming rules, checked as pure functions on every system."""

from __future__ import annotations

import pytest

from cansync.portable.windows_names import path_text_problem, windows_name_problem, windows_path_problem


@pytest.mark.parametrize(
    "name",
    ["CON", "con", "Nul", "AUX", "PRN", "COM1", "com9", "LPT1", "COM0", "COM\u00b9", "CONIN$", "nul.txt", "CON .log"],
)
def test_device_names_are_refused_in_any_case_and_with_any_extension(name: str) -> None:
    problem = windows_name_problem(name)
    assert problem is not None and "device name" in problem


@pytest.mark.parametrize("name", ["a<b", "a>b", 'a"b', "a:b", "a/b", "a\\b", "a|b", "a?b", "a*b", "a\x00b", "a\x1fb"])
def test_characters_windows_refuses_are_named(name: str) -> None:
    problem = windows_name_problem(name)
    assert problem is not None and "character" in problem


@pytest.mark.parametrize("name", ["data.", "data ", "data. ", "x" * 256, ""])
def test_trailing_dots_spaces_overlong_and_empty_names_are_refused(name: str) -> None:
    assert windows_name_problem(name) is not None


@pytest.mark.parametrize(
    "name", ["cansync-data", "CONSOLE", "console.log", "COM10", "LPT", "node.key", ".store.lock", "x" * 255, "data.db"]
)
def test_ordinary_names_pass(name: str) -> None:
    assert windows_name_problem(name) is None


@pytest.mark.parametrize(
    "path",
    [
        r"C:\Users\me\cansync-data",
        "C:/Users/me/cansync-data",
        r"D:\sync\..\cansync",
        r"\\server\share\cansync",
        r"\\?\C:\very\long\path",
        r"relative\cansync-data",
        "C:",
    ],
)
def test_drive_letters_unc_shares_and_either_slash_are_fine(path: str) -> None:
    assert windows_path_problem(path) is None


@pytest.mark.parametrize(
    ("path", "word"),
    [
        (r"C:\Users\me\CON", "device"),
        (r"C:\Users\me\nul\data", "device"),
        (r"C:\Users\me\data.", "dot"),
        (r"C:\Users\me\data \x", "dot or space"),
        (r"C:\Users\me\a:b", "':'"),
        ("C:\\Users\\me\new", "'\\n'"),
    ],
)
def test_a_bad_component_anywhere_in_a_windows_path_is_named(path: str, word: str) -> None:
    problem = windows_path_problem(path)
    assert problem is not None and word in problem


def test_on_posix_only_control_characters_are_a_problem() -> None:
    assert path_text_problem("/srv/CON/aux.", windows=False) is None
    assert path_text_problem("/srv/cansync\n", windows=False) == "the control character '\\n'"
    assert path_text_problem(r"C:\srv\CON", windows=True) is not None
