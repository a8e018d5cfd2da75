"""Windows' rules for file and folder names, as pure checks that run (and are tested) on every system.

Windows refuses `<>:"/\\|?*` and control characters in a name, gives the device names CON, PRN, AUX, NUL,
COM0-9 and LPT0-9 (with any extension, in any case: `nul.txt` is the NUL device) a meaning of their own, and
silently drops a trailing dot or space, so `data.` and `data` are one file. A name that breaks a rule either
fails on Windows or, worse, quietly means something else.
"""

from __future__ import annotations

import re
from pathlib import PureWindowsPath

MAX_NAME_LENGTH = 255  # characters in one component on NTFS
_FORBIDDEN = re.compile(r'[<>:"/\\|?*\x00-\x1f]')
_DEVICE_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{digit}" for port in ("COM", "LPT") for digit in "0123456789\u00b9\u00b2\u00b3"}
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def windows_name_problem(name: str) -> str | None:
    """Why Windows cannot use `name` as one file or folder name, or None when it can."""
    if not name:
        return "an empty name"
    if len(name) > MAX_NAME_LENGTH:
        return f"a name longer than {MAX_NAME_LENGTH} characters"
    bad = _FORBIDDEN.search(name)
    if bad:
        return f'the character {bad.group()!r} in {name!r} (Windows refuses <>:"/\\|?* and control characters)'
    if name[-1] in ". ":
        return f"{name!r} ends with a dot or space, which Windows drops"
    device = name.split(".", 1)[0].rstrip(" ").upper()
    if device in _DEVICE_NAMES:
        return f"{name!r} is the Windows device name {device}"
    return None


def windows_path_problem(path: str) -> str | None:
    """Why Windows cannot use `path` (drive letters, UNC shares and either slash are fine), or None."""
    parts = PureWindowsPath(path).parts
    anchor = PureWindowsPath(path).anchor
    for part in parts[1:] if anchor else parts:
        if part in (".", ".."):
            continue
        problem = windows_name_problem(part)
        if problem is not None:
            return problem
    return None


def path_text_problem(path: str, *, windows: bool) -> str | None:
    """Why `path` cannot name a folder on this kind of system: Windows' rules, or control characters."""
    if windows:
        return windows_path_problem(path)
    bad = _CONTROL.search(path)
    return f"the control character {bad.group()!r}" if bad else None
