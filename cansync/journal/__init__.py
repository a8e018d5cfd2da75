"""The recorder: the SQLite event journal, its snapshots and its audit queries."""
