"""Build hook: compile proto/*.proto into cansync/wire/pb/ before the package is built.

The generated modules are never committed or edited by hand; tests/test_proto_generation.py checks
that what is installed matches what protoc makes from the sources.
"""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # cansync_build.py sits beside this file

PROTO_PACKAGE = "cansync.wire.pb"


def compile_protos() -> None:
    from cansync_build import generate  # noqa: PLC0415  (build-time only)

    generate(ROOT / "proto", ROOT / "cansync" / "wire" / "pb")


class BuildWithProtos(build_py):
    def run(self) -> None:
        compile_protos()
        # Package discovery ran before the modules existed (a fresh checkout has no cansync/wire/pb), so it
        # missed them: name the package here, or the wheel ships without it. (An editable install imports
        # them from the checkout, where they were just written.)
        if not self.editable_mode and PROTO_PACKAGE not in self.packages:
            self.packages.append(PROTO_PACKAGE)
        super().run()


setup(cmdclass={"build_py": BuildWithProtos})
