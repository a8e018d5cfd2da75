"""20 seeded fault trials on a 3-peer mesh of real stores and agents (bench/fault_soak.py runs 100).

Each trial: a few ingests, retags and trash/restores on random nodes, one fault at a random point
among them (kill -9 an agent, kill a store, cut an agent's link to its store, kill the sender in the
middle of a multi-MiB transfer, fill a journal's disk), heal, then: every store converges on the same
assets and metadata, every file hashes to its name, no asset is duplicated, every journal verifies.
A failure prints the seed, the fault sequence and the agents' warnings; replay it with
`bash tests/isolate.sh .venv/bin/python bench/fault_soak.py --replay SEED`.
"""

from __future__ import annotations

import os

import pytest

from tests.faults.faults import KINDS
from tests.faults.trials import MeshSession, kind_for

BASE_SEED = int(os.environ.get("CANSYNC_FAULT_SEED", "20250"))
SEEDS = [BASE_SEED * 1000 + i for i in range(20)]


def test_the_seeds_cover_every_fault_kind_equally():
    counts = {kind: sum(kind_for(seed) == kind for seed in SEEDS) for kind in KINDS}
    assert counts == {kind: 4 for kind in KINDS}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed{seed}-{kind_for(seed)}" for seed in SEEDS])
def test_a_healed_fault_leaves_every_store_converged_and_intact(mesh_session: MeshSession, seed: int):
    result = mesh_session.run(seed)
    print(result.report())
    assert result.ok, result.report()
