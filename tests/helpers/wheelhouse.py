"""The wheelhouse: wheels of every requirement of cansync's build and install, so a test can build cansync
and install it into a fresh venv without an index (`pip ... --no-index --find-links .wheelhouse`).

The suite runs in a network namespace with only loopback (tests/isolate.sh), where pip reaches no
index: tests/run.sh fills the wheelhouse before it isolates. What goes in is read from pyproject.toml
(build-system.requires and project.dependencies, each resolved on its own, as pip resolves a build
environment apart from the install); it is refilled only when those or the interpreter change, so a
run where they did not costs one file comparison.

    .venv/bin/python -m tests.helpers.wheelhouse     # fill .wheelhouse/ unless it is current
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = ROOT / ".wheelhouse"
FILLED_FOR = "filled-for.txt"  # inside the wheelhouse: the requirements and interpreter it was filled for


class WheelhouseError(RuntimeError):
    """The wheelhouse is missing or out of date and could not be filled here."""


def requirement_sets(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, list[str]]:
    project = tomllib.loads(pyproject.read_text())
    return {
        "build": list(project["build-system"]["requires"]),
        "runtime": list(project["project"]["dependencies"]),
    }


def expected_stamp() -> str:
    lines = [f"# python {platform.python_version()} {sys.implementation.cache_tag} {platform.machine()}"]
    for name, requirements in requirement_sets().items():
        lines += [f"[{name}]", *requirements]
    return "\n".join(lines) + "\n"


def is_current(wheelhouse: Path = WHEELHOUSE) -> bool:
    stamp = wheelhouse / FILLED_FOR
    return stamp.is_file() and stamp.read_text() == expected_stamp()


def fill(wheelhouse: Path = WHEELHOUSE, *, pip_retries: int = 5) -> None:
    """Download or build a wheel of every requirement into a fresh wheelhouse, replacing the old one whole."""
    partial = wheelhouse.with_name(wheelhouse.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name, requirements in requirement_sets().items():
        command = [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check"]
        command += ["--retries", str(pip_retries), "--wheel-dir", str(partial), *requirements]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise WheelhouseError(
                f"`pip wheel` of cansync's {name} requirements failed ({result.returncode}):\n"
                f"{result.stderr.strip()[-3000:]}"
            )
    (partial / FILLED_FOR).write_text(expected_stamp())
    shutil.rmtree(wheelhouse, ignore_errors=True)
    os.replace(partial, wheelhouse)  # only a complete wheelhouse carries a stamp


def ensure_current(wheelhouse: Path = WHEELHOUSE, *, pip_retries: int = 5) -> Path:
    """The wheelhouse, filled first if it is missing or was filled for other requirements."""
    if not is_current(wheelhouse):
        try:
            fill(wheelhouse, pip_retries=pip_retries)
        except WheelhouseError as exc:
            raise WheelhouseError(
                f"{wheelhouse} is missing or out of date, and filling it failed (inside tests/isolate.sh pip "
                "reaches no index). Fill it where the network is reachable: `bash tests/run.sh` does, or "
                f"`.venv/bin/python -m tests.helpers.wheelhouse`.\n{exc}"
            ) from exc
    return wheelhouse


if __name__ == "__main__":
    if is_current():
        print(f"wheelhouse {WHEELHOUSE} is current")
    else:
        try:
            fill()
        except WheelhouseError as exc:
            sys.exit(f"tests/helpers/wheelhouse.py: {exc}")
        print(f"wheelhouse {WHEELHOUSE} filled: {len(list(WHEELHOUSE.glob('*.whl')))} wheels")
