"""Build hook: what the package needs that is not a plain source file of it.

- proto/*.proto is compiled into cansync/wire/pb/ (never committed or edited by hand;
  tests/test_proto_generation.py checks that what is installed matches what protoc makes).
- alembic/ (the journal's migrations, kept at the repository root so `alembic -c migrations.ini` works
  there) is copied into the built package as cansync/journal/migrations/, so an installed cansync can
  migrate a journal. Only into the build: an editable install reads alembic/ in the checkout itself.
"""

import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # cansync_build.py sits beside this file

PROTO_PACKAGE = "cansync.wire.pb"
MIGRATIONS_SOURCE = ROOT / "alembic"
MIGRATIONS_PACKAGE_DIR = ("cansync", "journal", "migrations")  # where cansync.journal.database looks first


def compile_protos() -> None:
    from cansync_build import generate  # noqa: PLC0415  (build-time only)

    generate(ROOT / "proto", ROOT / "cansync" / "wire" / "pb")


def copy_migrations(build_lib: Path) -> None:
    """alembic/'s env.py, script template and revisions into the built package, replacing an older copy."""
    target = build_lib.joinpath(*MIGRATIONS_PACKAGE_DIR)
    shutil.rmtree(target, ignore_errors=True)  # a revision deleted since the last build must not linger
    (target / "versions").mkdir(parents=True)
    for name in ("env.py", "script.py.mako"):
        shutil.copy2(MIGRATIONS_SOURCE / name, target / name)
    revisions = sorted((MIGRATIONS_SOURCE / "versions").glob("*.py"))
    if not revisions:
        raise RuntimeError(f"no alembic revisions under {MIGRATIONS_SOURCE / 'versions'}")
    for revision in revisions:
        shutil.copy2(revision, target / "versions" / revision.name)


class BuildWithProtosAndMigrations(build_py):
    def run(self) -> None:
        compile_protos()
        # An editable install reads both from the checkout: the modules were just written there, and
        # cansync.journal.database falls back to alembic/ when the package holds no migrations.
        if not self.editable_mode:
            # Package discovery ran before the modules existed (a fresh checkout has no cansync/wire/pb), so
            # it missed them: name the package here, or the wheel ships without it.
            if PROTO_PACKAGE not in self.packages:
                self.packages.append(PROTO_PACKAGE)
            copy_migrations(Path(self.build_lib))
        super().run()


setup(cmdclass={"build_py": BuildWithProtosAndMigrations})
