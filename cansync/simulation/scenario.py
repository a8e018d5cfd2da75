"""What one simulated run does, drawn from its seed: the agents, who learns of whom and when, the assets
users add and the metadata they edit, and the faults. The draw is the whole plan: a run is this plan
played on the simulated loop, whose own seed orders what is ready at each instant."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum


class FaultKind(StrEnum):
    LINK_CUT = "link_cut"  # the connections between two agents break (they may dial again at once)
    PARTITION = "partition"  # two agents cannot reach each other for a while
    CRASH = "crash"  # an agent dies between two awaits and starts again from its journal later
    STORE_DOWN = "store_down"  # an agent's store answers nothing for a while
    DISK_FULL = "disk_full"  # an agent's store refuses writes for a while
    CORRUPT_PULL = "corrupt_pull"  # an agent's store gives wrong bytes for some assets, once each


class RogueKind(StrEnum):
    BAD_HASHES = "bad_hashes"  # its adverts carry ids that are not 64 lower-case hex characters
    LIES_ABOUT_HOLDINGS = "lies_about_holdings"  # it advertises assets it does not hold


@dataclass(frozen=True)
class AssetPlan:
    agent: int
    at_ms: int
    size: int
    tags: tuple[str, ...]


@dataclass(frozen=True)
class EditPlan:
    agent: int
    at_ms: int
    pick: int  # which of the assets the agent's store holds at that moment (modulo their number)
    tags: tuple[str, ...]
    description: str
    trashed: bool


@dataclass(frozen=True)
class FaultPlan:
    kind: FaultKind
    at_ms: int
    for_ms: int
    agents: tuple[int, ...]
    steps: int = 0  # CRASH: callbacks run after at_ms before it strikes (a point between two awaits)


@dataclass(frozen=True)
class Introduction:
    """At `at_ms`, agent `learner` is told agent `peer`'s address (a ticket)."""

    at_ms: int
    learner: int
    peer: int


@dataclass(frozen=True)
class Scenario:
    seed: int
    agents: int
    starts_ms: tuple[int, ...]
    introductions: tuple[Introduction, ...]
    assets: tuple[AssetPlan, ...]
    edits: tuple[EditPlan, ...]
    faults: tuple[FaultPlan, ...]
    rogue: RogueKind | None
    latency_ms: tuple[int, int]
    active_ms: int  # faults and user actions happen before this; then everything heals
    settle_ms: int  # how long after active_ms the agents get to converge
    notes: list[str] = field(default_factory=list, compare=False)

    @property
    def rogue_index(self) -> int | None:
        """The rogue is the last agent, when there is one."""
        return self.agents - 1 if self.rogue is not None else None

    def describe(self) -> str:
        faults = ", ".join(f"{f.kind.value}@{f.at_ms / 1000:.1f}s{list(f.agents)}" for f in self.faults) or "none"
        return (
            f"seed {self.seed}: {self.agents} agents{f' (rogue: {self.rogue.value})' if self.rogue else ''}, "
            f"{len(self.assets)} assets, {len(self.edits)} edits, latency {self.latency_ms} ms, faults: {faults}"
        )


def draw(seed: int, agents: int | None = None, *, mesh: bool = False, small: bool = False) -> Scenario:
    """The plan of seed `seed`. `agents` fixes their number (else 3-6); `mesh` (the scale runs): every agent
    starts with its own assets, no faults and no rogue, so the spread of uploads can be measured. `small`
    (the CI campaign): fewer agents and assets on average and a shorter active phase, the same kinds of
    faults; a seed draws a different plan with and without it."""
    rng = random.Random(f"scenario:{seed}:small" if small else f"scenario:{seed}")
    if agents is not None:
        count = agents
    else:
        count = rng.choice([3, 3, 4, 4, 5, 6]) if small else rng.randint(3, 6)
    active_ms = rng.randint(3_000, 8_000) if small else rng.randint(4_000, 12_000)
    rogue: RogueKind | None = None
    if not mesh and count >= 4 and rng.random() < 0.25:
        rogue = rng.choice(list(RogueKind))
    starts = tuple(0 if i == 0 else rng.choice([0, 0, rng.randint(0, active_ms // 2)]) for i in range(count))
    introductions = _introductions(rng, count, starts, mesh)
    assets = _assets(rng, count, active_ms, mesh, small)
    edits = () if mesh else _edits(rng, count, active_ms)
    faults = () if mesh else _faults(rng, count, active_ms, rogue is not None)
    latency = (0, 0) if rng.random() < 0.3 else (rng.randint(0, 5), rng.randint(5, 60))
    settle_ms = 240_000 if mesh else 120_000
    return Scenario(seed, count, starts, introductions, assets, edits, faults, rogue, latency, active_ms, settle_ms)


def _introductions(rng: random.Random, count: int, starts: tuple[int, ...], mesh: bool) -> tuple[Introduction, ...]:
    """A connected graph of who is told of whom: a random tree, some extra edges, and some pairs told of
    each other at the same instant (their dials cross). Peer exchange spreads the rest."""
    order = list(range(count))
    rng.shuffle(order)
    pairs: list[tuple[int, int]] = []
    for position in range(1, count):
        pairs.append((order[position], order[rng.randrange(position)]))
    for _ in range(rng.randint(0, count)):
        a, b = rng.sample(range(count), 2)
        pairs.append((a, b))
    if mesh:
        pairs = [(a, b) for a in range(count) for b in range(count) if a < b and rng.random() < 0.2] + pairs
    introductions = []
    for a, b in pairs:
        at = max(starts[a], starts[b]) + rng.choice([0, 0, rng.randint(0, 2_000)])
        introductions.append(Introduction(at, a, b))
        if rng.random() < 0.4:  # both told at once: two dials cross
            introductions.append(Introduction(at, b, a))
    return tuple(sorted(set(introductions), key=lambda i: (i.at_ms, i.learner, i.peer)))


def _assets(rng: random.Random, count: int, active_ms: int, mesh: bool, small: bool) -> tuple[AssetPlan, ...]:
    plans: list[AssetPlan] = []
    most = 2 if small else 3
    per_agent = (lambda: rng.randint(3, 6)) if mesh else (lambda: rng.randint(0, most))
    for agent in range(count):
        for _ in range(per_agent()):
            at = 0 if mesh or rng.random() < 0.5 else rng.randint(0, active_ms)
            # ids must differ (the same content added twice is one asset), so only the first may be empty
            sizes = [rng.randint(8, 2_000), rng.randint(8, 2_000), rng.randint(2_000, 300_000)]
            size = 0 if not plans and rng.random() < 0.2 else rng.choice(sizes)
            tags = tuple(sorted(rng.sample(["red", "green", "blue", "work", "home"], rng.randint(0, 2))))
            plans.append(AssetPlan(agent, at, size, tags))
    if not plans:
        plans.append(AssetPlan(0, 0, 100, ()))
    return tuple(plans)


def _edits(rng: random.Random, count: int, active_ms: int) -> tuple[EditPlan, ...]:
    edits = []
    used: set[int] = set()
    for _ in range(rng.randint(0, 4)):
        at = rng.randint(500, active_ms)
        while at in used:  # one edit per instant: two at one ms by one agent would tie on every key
            at += 1
        used.add(at)
        tags = tuple(sorted(rng.sample(["x", "y", "z"], rng.randint(0, 2))))
        edits.append(
            EditPlan(rng.randrange(count), at, rng.randrange(1 << 16), tags, f"edit {at}", rng.random() < 0.15)
        )
    return tuple(edits)


def _faults(rng: random.Random, count: int, active_ms: int, has_rogue: bool) -> tuple[FaultPlan, ...]:
    honest = count - 1 if has_rogue else count
    faults = []
    for _ in range(rng.randint(0, 3)):
        kind = rng.choice(list(FaultKind))
        at = rng.randint(0, active_ms)
        for_ms = rng.randint(200, 6_000)
        if kind in (FaultKind.LINK_CUT, FaultKind.PARTITION):
            agents = tuple(rng.sample(range(count), 2))
        else:
            agents = (rng.randrange(honest),)
        steps = rng.randint(0, 400) if kind is FaultKind.CRASH else 0
        faults.append(FaultPlan(kind, at, for_ms, agents, steps))
    return tuple(sorted(faults, key=lambda f: (f.at_ms, f.kind.value)))
