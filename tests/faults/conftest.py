"""A fault-trial mesh shared by the trials of one module (started once, repaired between trials)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.trials import MeshSession


@pytest.fixture(scope="module")
def mesh_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSession]:
    session = MeshSession(Path(tmp_path_factory.mktemp("fault-mesh")), converge_timeout=20.0)
    try:
        yield session
    finally:
        session.close()
