"""Loaded by every Python process started with this folder on PYTHONPATH: cansync's own code may not import
modules that exist only on POSIX systems, as on Windows, where they are missing.

Only imports made by a `cansync` module are refused: libraries pick their own module per system (filelock
uses fcntl here and msvcrt on Windows), and that is theirs to get right. Both ways in are watched: the
import statement (which finds an already loaded module without asking any finder) and importlib (a finder).
Every refusal is printed to stderr, so a caller that swallows the ImportError is still caught.
"""

from __future__ import annotations

import builtins
import importlib.abc
import sys
from collections.abc import Mapping, Sequence
from typing import Any

POSIX_ONLY = frozenset({"fcntl", "termios", "resource", "pwd", "grp", "pty", "tty", "syslog"})
REFUSED = "posix-only import refused"


def _refuse(name: str, importer: str) -> ModuleNotFoundError:
    print(f"{REFUSED}: {name} imported by {importer}", file=sys.stderr, flush=True)
    return ModuleNotFoundError(f"No module named {name!r} (refused: POSIX only)", name=name)


def _is_cansync(module_name: object) -> bool:
    return isinstance(module_name, str) and (module_name == "cansync" or module_name.startswith("cansync."))


_real_import = builtins.__import__


def _import(
    name: str,
    globals: Mapping[str, Any] | None = None,
    locals: Mapping[str, Any] | None = None,
    fromlist: Sequence[str] = (),
    level: int = 0,
) -> Any:
    importer = (globals or {}).get("__name__")
    if level == 0 and name.split(".")[0] in POSIX_ONLY and _is_cansync(importer):
        raise _refuse(name, str(importer))
    return _real_import(name, globals, locals, fromlist, level)


class _RefusePosixOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname.split(".")[0] not in POSIX_ONLY:
            return None
        frame = sys._getframe(1)
        while frame is not None and (
            frame.f_code.co_filename.startswith("<frozen importlib")
            or frame.f_globals.get("__name__", "").startswith("importlib")
        ):
            frame = frame.f_back  # type: ignore[assignment]
        importer = frame.f_globals.get("__name__") if frame is not None else None
        if _is_cansync(importer):
            raise _refuse(fullname, str(importer))
        return None


builtins.__import__ = _import
sys.meta_path.insert(0, _RefusePosixOnly())
print(f"sitecustomize: {', '.join(sorted(POSIX_ONLY))} refused to cansync", file=sys.stderr, flush=True)
