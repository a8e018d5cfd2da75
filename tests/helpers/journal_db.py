"""Read an agent's journal directly (read-only sqlite3), as an auditor would, while the agent runs."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def journal_rows(agent_home: Path, sql: str, *params: object) -> list[tuple]:
    """Rows of `sql` over agent_home/data/journal.db; [] while the journal does not exist yet."""
    try:
        with sqlite3.connect(f"file:{agent_home / 'data' / 'journal.db'}?mode=ro", uri=True, timeout=10) as db:
            return db.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return []
