"""Whole agents in one process under a seeded scheduler and clock (cansync.simulation).

- a CI campaign of 500 seeds of the small profile, every check holding on each;
- a seed replays identically (the same trace digest, step for step), failing ones included;
- every check can fail: a rule broken on purpose (tests/simulation/broken_rules.py) is caught;
- the bugs the simulation found stay fixed (tests/simulation/regressions.py): each seed passes, and
  fails again with its fix undone;
- issue 14: 32 agents in a mesh converge; whether uploads spread over the holders (at most twice the mean)
  is measured, and marked as expected to fail until the core spreads requests.

Longer campaigns: `.venv/bin/python bench/simulate.py --seeds 5000`.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import time
from collections.abc import Iterator
from multiprocessing.pool import AsyncResult

import pytest

from cansync.simulation.campaign import SeedOutcome, run_campaign, run_one
from cansync.simulation.checks import CHECKS
from tests.simulation.broken_rules import BROKEN_RULES, BrokenRule
from tests.simulation.regressions import REGRESSIONS, Regression

CI_SEEDS = range(1, 501)
MESH_SEED = 1
MESH_AGENTS = 16  # 32 take 36 s here: bench/simulate.py --mesh --agents 32 runs those
REPLAYED_SEED = 25  # a rogue peer, a corrupted pull, a crash and a cut link among five agents


@pytest.fixture(scope="module", autouse=True)
def _frozen_heap() -> Iterator[None]:
    """Every run ends with a full garbage collection (cansync.simulation.loop.run_simulated), which walks
    the whole heap: here all of pytest's (every module the suite imported, what earlier tests left), in
    this process and in each campaign worker forked from it. Frozen, only each run's own objects are
    walked: the runs are the same, the 500-seed campaign takes a fifth less CPU."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def test_a_campaign_of_500_seeds_holds_every_check() -> None:
    started = time.perf_counter()
    outcomes = list(run_campaign(CI_SEEDS, small=True, workers=os.cpu_count()))
    wall = time.perf_counter() - started
    failed = [o for o in outcomes if not o.passed]
    print(f"\n{len(outcomes)} seeds, {len(failed)} failed, {wall:.1f} s on {os.cpu_count()} CPUs")
    assert len(outcomes) == len(CI_SEEDS)
    assert not failed, "\n".join(f"seed {o.seed}: {o.failures}" for o in failed)


def test_a_seed_replays_identically() -> None:
    first = run_one(REPLAYED_SEED, small=True, keep_trace=True)
    second = run_one(REPLAYED_SEED, small=True, keep_trace=True)
    assert first.passed, first.failures
    assert first.trace_digest and first.trace_digest == second.trace_digest
    assert (first.steps, first.virtual_s, first.trace) == (second.steps, second.virtual_s, second.trace)
    assert "crashes" in "\n".join(first.trace)


def test_a_failing_seed_replays_identically(monkeypatch: pytest.MonkeyPatch) -> None:
    rule = BROKEN_RULES["received_once"]
    rule.apply(monkeypatch)
    first = run_one(rule.seed, small=rule.small)
    second = run_one(rule.seed, small=rule.small)
    assert first.failures and first.failures == second.failures
    assert first.trace_digest == second.trace_digest


def test_every_check_has_a_broken_rule_that_it_catches() -> None:
    assert set(BROKEN_RULES) == set(CHECKS) - {"harness"}


@pytest.mark.parametrize("rule", list(BROKEN_RULES.values()), ids=lambda r: r.check)
def test_a_broken_rule_is_caught(rule: BrokenRule, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_one(rule.seed, small=rule.small).passed  # the seed passes while the rule holds
    rule.apply(monkeypatch)
    outcome = run_one(rule.seed, small=rule.small)
    assert any(f.startswith(f"{rule.check}:") for f in outcome.failures), outcome.failures


@pytest.mark.parametrize("regression", REGRESSIONS, ids=lambda r: f"seed-{r.seed}")
def test_a_bug_the_simulation_found_stays_fixed(regression: Regression, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_one(regression.seed, regression.agents, small=regression.small).passed
    regression.undo_fix(monkeypatch)
    outcome = run_one(regression.seed, regression.agents, small=regression.small)
    assert any(f.startswith(f"{regression.check}:") for f in outcome.failures), outcome.failures


@pytest.fixture(scope="module", autouse=True)
def _mesh_in_background(_frozen_heap: None) -> Iterator[AsyncResult[SeedOutcome]]:
    """The mesh is one run on one core, and so are most tests here: it runs from the start in a process of its
    own at the lowest priority, on the core they leave idle (the campaign, on every core, leaves it next to
    nothing), instead of on its own time after them. The same run: a seed decides everything it does."""
    pool = multiprocessing.get_context("fork").Pool(1, initializer=os.nice, initargs=(19,))
    try:
        yield pool.apply_async(run_one, (MESH_SEED, MESH_AGENTS), {"mesh": True})
    finally:
        pool.terminate()
        pool.join()


@pytest.fixture(scope="module")
def mesh(_mesh_in_background: AsyncResult[SeedOutcome]) -> SeedOutcome:
    return _mesh_in_background.get(timeout=900)


@pytest.mark.timeout(900)
def test_a_mesh_of_16_agents_converges(mesh: SeedOutcome) -> None:
    assert mesh.passed, mesh.failures  # the union everywhere, each asset received once per receiver
    assert len(mesh.uploads) == MESH_AGENTS


@pytest.mark.xfail(
    reason="issue 14: requests do not yet spread enough over the holders; measured 3.28x the mean with 16 "
    "agents (seed 1), 2.67x with 32",
    strict=False,
)
def test_no_agent_of_a_mesh_uploads_more_than_twice_the_mean(mesh: SeedOutcome) -> None:
    print(f"\nuploads per agent: {sorted(mesh.uploads.values())}, spread {mesh.upload_spread():.2f}")
    assert mesh.upload_spread() <= 2.0
