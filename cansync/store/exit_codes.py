"""How `cansync store serve` ends, for a parent that runs it (the agent's embedded store) and must say why."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # anything else; the store said why on stderr
EXIT_BAD_CONFIG = 2
EXIT_PORT_IN_USE = 3  # another program listens on the port
EXIT_ROOT_IN_USE = 4  # another store serves the same storage root
