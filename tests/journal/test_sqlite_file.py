"""The journal file's light check (no SQLAlchemy, no alembic) agrees with alembic about the revisions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from cansync.journal import sqlite_file
from cansync.journal.database import alembic_config
from cansync.journal.errors import JournalError


def _as_tuple(down_revision: str | Sequence[str] | None) -> tuple[str, ...]:
    if down_revision is None:
        return ()
    return (down_revision,) if isinstance(down_revision, str) else tuple(down_revision)


def test_the_revisions_read_from_the_migration_text_are_alembics() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    by_alembic = {rev.revision: _as_tuple(rev.down_revision) for rev in script.walk_revisions()}
    assert sqlite_file.revision_graph() == by_alembic
    assert sqlite_file.known_revisions() == set(by_alembic)
    assert sqlite_file.head_revision() == script.get_current_head()


def test_a_migration_without_a_revision_line_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    versions = tmp_path / "versions"
    versions.mkdir(parents=True)
    (tmp_path / "env.py").write_text("")
    (versions / "0001_first.py").write_text('revision: str = "0001_first"\ndown_revision = None\n')
    (versions / "0002_second.py").write_text('"""no revision here"""\ndown_revision = "0001_first"\n')
    monkeypatch.setattr(sqlite_file, "PACKAGED_MIGRATIONS", tmp_path)
    sqlite_file.revision_graph.cache_clear()
    try:
        with pytest.raises(JournalError, match="0002_second.py: a journal migration without"):
            sqlite_file.revision_graph()
    finally:
        sqlite_file.revision_graph.cache_clear()


def test_a_merge_revision_follows_both_parents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    versions = tmp_path / "versions"
    versions.mkdir(parents=True)
    (tmp_path / "env.py").write_text("")
    (versions / "a.py").write_text("revision = 'a'\ndown_revision = None\n")
    (versions / "b.py").write_text("revision = 'b'  # a branch\ndown_revision: str | None = 'a'\n")
    (versions / "c.py").write_text("revision = 'c'\ndown_revision = 'a'\n")
    (versions / "d.py").write_text('revision = "d"\ndown_revision: tuple[str, ...] = ("b", "c")\n')
    (versions / "__init__.py").write_text("")
    monkeypatch.setattr(sqlite_file, "PACKAGED_MIGRATIONS", tmp_path)
    sqlite_file.revision_graph.cache_clear()
    try:
        assert sqlite_file.revision_graph() == {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}
        assert sqlite_file.head_revision() == "d"
    finally:
        sqlite_file.revision_graph.cache_clear()
