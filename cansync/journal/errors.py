"""The journal's one error type: every message names the journal file and what is wrong with it."""

from __future__ import annotations


class JournalError(Exception):
    """The journal cannot be opened, read or written; the message names the file and the problem."""


class SnapshotMismatch(JournalError):
    """The newest snapshot no longer matches the event chain (the journal changed after it was taken)."""
