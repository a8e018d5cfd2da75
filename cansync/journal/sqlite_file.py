"""The journal as a plain SQLite file: where its migrations live, the schema revisions they define, and
the read-only check that a file is a cansync journal this code can read.

Nothing here imports SQLAlchemy or alembic (together about 0.3 s of imports): the recorder runs this
check before it migrates a file, and `cansync journal inspect` opens the file with it alone.

The revisions are read from the text of the migration files (their `revision = "..."` and
`down_revision = ...` lines), the same files alembic runs, so there is one source of truth;
tests/journal/test_sqlite_file.py checks that this reading agrees with alembic's own.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from pathlib import Path

from cansync.journal.errors import JournalError

PACKAGED_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
CHECKOUT_MIGRATIONS = Path(__file__).resolve().parents[2] / "alembic"
SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 30_000

# `revision: str = "0002_x"` / `down_revision: str | None = "0001_x"` (or None, or a tuple for a merge)
_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(.*?)\s*(?:#.*)?$", re.MULTILINE)
_QUOTED = re.compile(r"""["']([^"'\n]+)["']""")


def script_location() -> Path:
    """The migrations this cansync runs: the installed package's copy, else the checkout's alembic/."""
    # The packaged copy first: in an installed cansync, parents[2]/alembic is site-packages/alembic, the library.
    for location in (PACKAGED_MIGRATIONS, CHECKOUT_MIGRATIONS):
        if (location / "env.py").is_file():
            return location
    raise JournalError(
        f"this cansync has no journal migrations: neither {PACKAGED_MIGRATIONS} nor {CHECKOUT_MIGRATIONS} holds "
        "env.py; reinstall cansync (`pip install .` from a checkout copies them into the package)"
    )


@functools.cache
def revision_graph() -> dict[str, tuple[str, ...]]:
    """Each schema revision this cansync knows -> the revisions it follows (none for the first)."""
    versions = script_location() / "versions"
    graph: dict[str, tuple[str, ...]] = {}
    # the files alembic loads: *.py but __init__.py and editor lock files (alembic.script.base)
    for path in sorted(versions.glob("*.py")):
        if path.name.startswith(("__init__", ".#")):
            continue
        found = {name: value for name, value in _ASSIGNMENT.findall(path.read_text(encoding="utf-8"))}
        revision = _QUOTED.fullmatch(found.get("revision", ""))
        if revision is None:
            raise JournalError(f'{path}: a journal migration without a `revision = "..."` line; reinstall cansync')
        graph[revision.group(1)] = tuple(_QUOTED.findall(found.get("down_revision", "")))
    if not graph:
        raise JournalError(f"no journal migrations under {versions}; reinstall cansync")
    return graph


def known_revisions() -> frozenset[str]:
    return frozenset(revision_graph())


def head_revision() -> str:
    """The newest revision: the one no other revision follows."""
    graph = revision_graph()
    followed = {parent for parents in graph.values() for parent in parents}
    heads = sorted(set(graph) - followed)
    if len(heads) != 1:
        raise JournalError(f"the journal migrations under {script_location()} have heads {heads}, not one")
    return heads[0]


def preflight(path: Path) -> str | None:
    """Check, without writing, that `path` is absent, empty or a cansync journal this code can open.

    Returns the schema revision the file records (None for a new or empty file).
    """
    if not path.exists():
        return None
    if path.is_dir():
        raise JournalError(f"{path}: is a directory, not a journal file")
    connection = open_read_only(path)
    if connection is None:
        return None
    try:
        return recorded_revision(path, connection)
    finally:
        connection.close()


def open_read_only(path: Path) -> sqlite3.Connection | None:
    """A connection that cannot write to the SQLite file at `path`; None when the file is empty.

    Refuses a file that does not start with the SQLite header. Says nothing yet of what the database
    holds: ask `recorded_revision`.
    """
    try:
        with path.open("rb") as fh:
            header = fh.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise JournalError(f"{path}: cannot read the journal file: {exc.strerror or exc}") from exc
    if not header:
        return None
    if header != SQLITE_MAGIC:
        raise JournalError(
            f"{path}: is not a SQLite database (its first bytes are not the SQLite header), so it is not a "
            "cansync journal; move it aside or point data_dir somewhere else"
        )
    try:
        # mode=ro: a refused file must keep every byte it had, and an audit never writes
        return sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
        )
    except sqlite3.Error as exc:
        raise JournalError(f"{path}: cannot open the journal read-only to check it: {exc}") from exc


def recorded_revision(path: Path, connection: sqlite3.Connection) -> str | None:
    """The schema revision the journal at `path` records, if this code knows it; None for a database
    with no tables yet (a journal still being created). JournalError for anything else."""
    try:
        tables = {
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        versions: list[str] = []
        if "alembic_version" in tables:
            versions = [v for (v,) in connection.execute("SELECT version_num FROM alembic_version")]
    except sqlite3.Error as exc:
        raise JournalError(f"{path}: is not a readable SQLite database ({exc}), so not a cansync journal") from exc
    if not tables or (tables == {"alembic_version"} and not versions):
        return None
    if "alembic_version" not in tables:
        shown = ", ".join(sorted(tables)[:8])
        raise JournalError(
            f"{path}: is a SQLite database of something else (tables: {shown}), not a cansync journal; "
            "move it aside or point data_dir somewhere else"
        )
    known = known_revisions()
    unknown = [v for v in versions if v not in known]
    if len(versions) != 1 or unknown:
        raise JournalError(
            f"{path}: records schema revision {', '.join(versions) or '(none)'}, which this cansync does not "
            f"know (it knows up to {head_revision()}): the journal was written by a newer cansync, or it is "
            "not a cansync journal; run a newer cansync or point data_dir somewhere else"
        )
    if "events" not in tables:
        raise JournalError(f"{path}: records revision {versions[0]} but has no events table: not a cansync journal")
    return versions[0]
