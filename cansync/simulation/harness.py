"""One simulated run: real agents (journal on SQLite, ledger, machine, sessions) on in-memory stores and an
in-memory network, all in one `SimulatedLoop`, playing a `Scenario` and then settling.

Each agent incarnation is a simulated process (`loop.actor`): its tasks and callbacks carry its name, so a
crash freezes exactly its work between two awaits, as kill -9 would, and the harness then releases what
the kernel would (its SQLite files, its node lock, its endpoint). A restart is `Agent.open` on the same
data_dir. The store is another process: it outlives its agent's crash.

The run ends once every honest store holds every honest asset with the metadata the last edit gave it
(or the settle time runs out); then the agents stop cleanly, and `checks` judges the journals and stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hashlib
import logging
import random
import shutil
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cansync.agent import session
from cansync.agent.runtime import Agent, AgentEnvironment
from cansync.config import Config
from cansync.core import messages as msg
from cansync.net.node_key import KEY_FILE, endpoint_id_of
from cansync.simulation import inline_sqlite
from cansync.simulation.checks import CheckFailure, judge
from cansync.simulation.loop import SimulatedLoop, actor, run_simulated
from cansync.simulation.memory_store import MemoryStore
from cansync.simulation.memory_transport import MemoryNetwork
from cansync.simulation.scenario import FaultKind, FaultPlan, RogueKind, Scenario
from cansync.wire.pb import can_sync_pb2, peer_pb2

log = logging.getLogger(__name__)

PASSPHRASE = "simulated passphrase"
POLL_MS = 500  # how often the settle phase looks whether the stores agree
QUIET_MS = 3_000  # after they agree: long enough for a late duplicate or echo to show in a journal
HARNESS = "harness"


@dataclass
class Node:
    """One agent of the run, across its incarnations, and its store (which outlives crashes)."""

    index: int
    name: str
    honest: bool
    data_dir: Path
    store: MemoryStore
    endpoint_id: str
    incarnation: int = 0
    agent: Agent | None = None
    task: asyncio.Task[None] | None = None
    crashed: bool = False
    started: bool = False
    knows: set[int] = field(default_factory=set)  # agents it has been told of (tickets)

    @property
    def process(self) -> str:
        return f"{self.name}#{self.incarnation}"

    @property
    def up(self) -> bool:
        return self.agent is not None and not self.crashed


@dataclass(frozen=True)
class MetaEdit:
    hash: str
    at_ms: int
    origin: str  # the endpoint id of the agent whose user made it
    tags: tuple[str, ...]
    description: str
    trashed: bool


@dataclass
class RunRecord:
    """What the checks need of a finished run."""

    scenario: Scenario
    nodes: list[Node]
    origins: dict[str, set[int]]  # asset -> agents whose users added it
    edits: list[MetaEdit]
    corrupted: set[tuple[str, str]]  # (endpoint id, asset) whose bytes a store corrupted on a pull
    journal_reports: dict[str, tuple[bool, str]]  # name -> (ok, reason)
    converged_ms: int | None
    end_ms: int
    steps: int
    trace_digest: str = ""
    trace: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # harness-level trouble (an agent that failed to open)
    failures: list[CheckFailure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


class Harness:
    def __init__(self, scenario: Scenario, loop: SimulatedLoop, root: Path) -> None:
        self.scenario = scenario
        self.loop = loop
        self.root = root
        self.network = MemoryNetwork(rng=random.Random(f"network:{scenario.seed}"), latency_ms=scenario.latency_ms)
        self.nodes = [self._node(i) for i in range(scenario.agents)]
        self.origins: dict[str, set[int]] = {}
        self.edits: list[MetaEdit] = []
        self.corrupted: set[tuple[str, str]] = set()
        self.trace: list[str] = []
        self.errors: list[str] = []
        self._actions: list[asyncio.Task[Any]] = []
        self._healed = False  # past the active phase: no more faults

    def _node(self, index: int) -> Node:
        seed = self.scenario.seed
        name = node_name(index)
        data_dir = self.root / name
        data_dir.mkdir(parents=True)
        key = random.Random(f"node-key:{seed}:{index}").randbytes(32)
        key_file = data_dir / KEY_FILE
        key_file.touch(mode=0o600)
        key_file.write_bytes(key)  # a seeded identity: ids (and every tie they break) replay
        store = MemoryStore(name, clock=self.loop.wall_ms)
        honest = index != self.scenario.rogue_index
        return Node(index, name, honest, data_dir, store, endpoint_id_of(key))

    # ------------------------------------------------------------------ the run

    def note(self, text: str) -> None:
        line = f"{self.loop.time():9.3f}s {text}"
        self.trace.append(line)
        log.info("simulation: %s", text)
        self.loop.note(text)

    async def play(self) -> RunRecord:
        scenario = self.scenario
        self.note(scenario.describe())
        timeline: list[tuple[int, int, Callable[[], None]]] = []

        def at(ms: int, action: Callable[[], None]) -> None:
            timeline.append((ms, len(timeline), action))

        for node, start in zip(self.nodes, scenario.starts_ms, strict=True):
            at(start, functools.partial(self._start, node))
        for intro in scenario.introductions:
            at(intro.at_ms, functools.partial(self._introduce, self.nodes[intro.learner], self.nodes[intro.peer]))
        for number, plan in enumerate(scenario.assets):
            at(plan.at_ms, functools.partial(self._add_asset, number))
        for edit in scenario.edits:
            at(
                edit.at_ms,
                functools.partial(self._edit, edit.agent, edit.pick, edit.tags, edit.description, edit.trashed),
            )
        for fault in scenario.faults:
            at(fault.at_ms, functools.partial(self._fault, fault))
            at(fault.at_ms + fault.for_ms, functools.partial(self._heal, fault))
        at(scenario.active_ms, self._heal_everything)
        for ms, _, action in sorted(timeline, key=lambda item: (item[0], item[1])):
            await self._sleep_until(ms)
            action()
        converged = await self._settle()
        await asyncio.sleep(QUIET_MS / 1000)
        end_ms = int(self.loop.time() * 1000)
        await self._stop_all()
        reports = await self._verify_journals()
        return RunRecord(
            scenario, self.nodes, self.origins, self.edits, self.corrupted, reports, converged, end_ms,
            self.loop.steps, trace=self.trace, errors=self.errors,
        )  # fmt: skip

    async def _sleep_until(self, ms: int) -> None:
        delay = ms / 1000 - self.loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    def _in_process(self, node: Node, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run agent code as part of the agent's process: it dies with it."""
        context = contextvars.Context()
        context.run(actor.set, node.process)
        task = self.loop.create_task(coro, name=f"{node.process}:{name}", context=context)
        self._actions.append(task)
        return task

    # ------------------------------------------------------------------ agents

    def _config(self, node: Node) -> Config:
        return Config(
            sync_passphrase=PASSPHRASE,
            sync_api_key="simulated",
            data_dir=node.data_dir,
            bind_addr="127.0.0.1:0",
            relays=(),
            pkarr_relays=(),
            lan_discovery=False,
            web_addr="",
            poll_interval_secs=3.0,
        )

    def _environment(self, node: Node) -> AgentEnvironment:
        rng = random.Random(f"bytes:{self.scenario.seed}:{node.index}:{node.incarnation}")
        return AgentEnvironment(
            clock=self.loop.wall_ms,
            random_bytes=rng.randbytes,
            bind=self.network.bind,
            store=self._store_for(node),
            open_journal=inline_sqlite.open_inline_journal,
        )

    def _store_for(self, node: Node) -> Any:
        return node.store

    def _start(self, node: Node) -> None:
        node.started = True
        node.crashed = False
        self.note(f"{node.process}: starts")
        node.task = self._in_process(node, self._open_and_run(node), "agent")

    async def _open_and_run(self, node: Node) -> None:
        try:
            agent = await Agent.open(self._config(node), self._environment(node))
        except Exception as exc:  # noqa: BLE001 - a run that cannot even start an agent is a failed run
            self.errors.append(f"{node.process} could not open: {exc!r}")
            self.note(f"{node.process}: could not open: {exc!r}")
            return
        node.agent = agent
        for peer in sorted(node.knows):
            self._learn(node, self.nodes[peer])
        # a restarted agent's new address reaches those who know it (as LAN beacons or a ticket would)
        for other in self.nodes:
            if node.index in other.knows and other.up:
                self._learn(other, node)
        await agent.run()

    def _introduce(self, learner: Node, peer: Node) -> None:
        learner.knows.add(peer.index)
        self.note(f"{learner.name} is told of {peer.name}")
        if learner.up and peer.up:
            self._learn(learner, peer)

    def _learn(self, learner: Node, peer: Node) -> None:
        agent = learner.agent
        if agent is None or not peer.up:
            return
        try:
            address = self.network.address_of(peer.endpoint_id)
        except KeyError:
            return  # not bound (yet): its start tells the learner
        self._in_process(learner, agent.directory.learn(address, via="ticket"), f"learn-{peer.name}")

    def _crash(self, node: Node) -> None:
        """kill -9: the process stops between two awaits; the kernel closes its files and frees its lock."""
        agent = node.agent
        if agent is None or node.crashed or self._healed:
            return  # not up, or the crash's point came only after everything healed: it never happens
        self.note(f"{node.process}: crashes (step {self.loop.steps})")
        node.crashed = True
        self.loop.freeze(node.process)
        inline_sqlite.sever(node.process)
        agent.identity.release()
        with contextlib.suppress(KeyError):
            self.network.unbind(node.endpoint_id)
        node.agent = None
        node.task = None

    def _restart(self, node: Node) -> None:
        if not node.crashed:
            return
        node.incarnation += 1
        self._start(node)

    # ------------------------------------------------------------------ users

    def _add_asset(self, number: int) -> None:
        plan = self.scenario.assets[number]
        node = self.nodes[plan.agent]
        content = _content(self.scenario.seed, number, plan.size)
        asset = node.store.ingest(content, tags=list(plan.tags))
        self.origins.setdefault(asset, set()).add(plan.agent)
        self.note(f"{node.name}: user adds {asset[:12]} ({plan.size} bytes)")

    def _edit(self, agent: int, pick: int, tags: tuple[str, ...], description: str, trashed: bool) -> None:
        node = self.nodes[agent]
        held = sorted(node.store.holdings())
        if not held or node.store.down:
            return
        asset = held[pick % len(held)]
        node.store.edit_meta(asset, tags=list(tags), description=description, trashed=trashed)
        record = node.store.meta_of(asset)
        self.edits.append(MetaEdit(asset, record.meta_updated_ms, node.endpoint_id, tags, description, trashed))
        self.note(f"{node.name}: user edits {asset[:12]}: tags {list(tags)}, trashed {trashed}")

    # ------------------------------------------------------------------ faults

    def _fault(self, fault: FaultPlan) -> None:
        nodes = [self.nodes[i] for i in fault.agents]
        kind = fault.kind
        self.note(f"fault {kind.value} on {[n.name for n in nodes]} for {fault.for_ms} ms")
        if kind is FaultKind.LINK_CUT:
            self.network.cut(nodes[0].endpoint_id, nodes[1].endpoint_id)
        elif kind is FaultKind.PARTITION:
            self.network.partition(nodes[0].endpoint_id, nodes[1].endpoint_id)
        elif kind is FaultKind.CRASH:
            self.loop.after_steps(fault.steps, lambda: self._crash(nodes[0]))
        elif kind is FaultKind.STORE_DOWN:
            nodes[0].store.down = True
        elif kind is FaultKind.DISK_FULL:
            nodes[0].store.disk_full = True
        elif kind is FaultKind.CORRUPT_PULL:
            store = nodes[0].store
            held = sorted(store.holdings())
            rng = random.Random(f"corrupt:{self.scenario.seed}:{fault.at_ms}")
            chosen = rng.sample(held, min(len(held), rng.randint(1, 3))) if held else []
            store.corrupt_pulls.update(chosen)
            self.corrupted.update((nodes[0].endpoint_id, asset) for asset in chosen)

    def _heal(self, fault: FaultPlan) -> None:
        nodes = [self.nodes[i] for i in fault.agents]
        kind = fault.kind
        if kind is FaultKind.PARTITION:
            self.network.heal(nodes[0].endpoint_id, nodes[1].endpoint_id)
        elif kind is FaultKind.CRASH:
            self._restart(nodes[0])
        elif kind is FaultKind.STORE_DOWN:
            nodes[0].store.down = False
        elif kind is FaultKind.DISK_FULL:
            nodes[0].store.disk_full = False
        elif kind is FaultKind.CORRUPT_PULL:
            nodes[0].store.corrupt_pulls.clear()
        else:
            return
        self.note(f"healed {kind.value} on {[n.name for n in nodes]}")

    def _heal_everything(self) -> None:
        self.note("every fault heals")
        self._healed = True
        for fault in self.scenario.faults:
            if fault.kind is FaultKind.PARTITION:
                self.network.heal(*(self.nodes[i].endpoint_id for i in fault.agents))
        for node in self.nodes:
            node.store.down = False
            node.store.disk_full = False
            node.store.corrupt_pulls.clear()
            if node.crashed:
                self._restart(node)
            elif not node.started:
                self._start(node)

    # ------------------------------------------------------------------ settling and stopping

    def expected_union(self) -> set[str]:
        return {asset for asset, who in self.origins.items() if any(self.nodes[i].honest for i in who)}

    def agreed(self) -> bool:
        """Every honest store holds every honest asset, and every honest store's metadata agrees."""
        union = self.expected_union()
        honest = [n for n in self.nodes if n.honest]
        if not all(n.up for n in honest):
            return False
        if any(not union <= set(n.store.holdings()) for n in honest):
            return False
        for asset in union:
            if len({_meta_key(n.store.meta_of(asset)) for n in honest}) > 1:
                return False
        return True

    async def _settle(self) -> int | None:
        deadline = self.scenario.active_ms + self.scenario.settle_ms
        while self.loop.time() * 1000 < deadline:
            if self.agreed():
                ms = int(self.loop.time() * 1000)
                self.note("the stores agree")
                return ms
            await asyncio.sleep(POLL_MS / 1000)
        self.note("the stores did not agree in time")
        return None

    async def _stop_all(self) -> None:
        """A clean stop of every live agent (cancel, then close), as Ctrl-C does."""
        for node in self.nodes:
            if node.task is not None and not node.task.done():
                node.task.cancel()
        running = [n.task for n in self.nodes if n.task is not None]
        await asyncio.gather(*running, return_exceptions=True)
        for node in self.nodes:
            if node.agent is not None and not node.crashed:
                closing = self._in_process(node, node.agent.close(), "close")
                try:
                    await closing
                except Exception as exc:  # noqa: BLE001 - reported as the run's trouble
                    self.errors.append(f"{node.process} did not close cleanly: {exc!r}")
        leftover = [t for t in self._actions if not t.done() and not self.loop.is_frozen(t)]
        for task in leftover:
            task.cancel()
        await asyncio.gather(*leftover, return_exceptions=True)

    async def _verify_journals(self) -> dict[str, tuple[bool, str]]:
        reports: dict[str, tuple[bool, str]] = {}
        for node in self.nodes:
            path = node.data_dir / "journal.db"
            if not path.exists():
                reports[node.name] = (True, "no journal (never started)")
                continue
            journal = await inline_sqlite.open_inline_journal(path, self.loop.wall_ms)
            try:
                report = await journal.verify()
                reports[node.name] = (report.ok, report.reason)
            finally:
                await journal.close()
        return reports


# ---------------------------------------------------------------------- the rogue


@contextlib.contextmanager
def rogue_wire(process_prefix: str, kind: RogueKind, seed: int) -> Iterator[None]:
    """While this is on, control messages the rogue's processes write are tampered with: its adverts (and
    the keepalives it sends when quiet) carry an id that is not an asset id, or ids of assets it does not
    hold. Every other agent's messages pass unchanged: the rogue is a real agent that lies on the wire."""
    honest_encode = session.encode_control
    lies = tuple(hashlib.sha256(f"lie:{seed}:{i}".encode()).hexdigest() for i in range(3))

    def encode(message: object) -> Any:
        if not (actor.get() or "").startswith(process_prefix) or not isinstance(message, msg.Advertise | msg.KeepAlive):
            return honest_encode(message)
        held = message.hashes if isinstance(message, msg.Advertise) else ()
        if kind is RogueKind.BAD_HASHES:  # past our own encoder, which would not write it
            return peer_pb2.Advertise(digests=[can_sync_pb2.AssetDigest(hash=h) for h in (*held, "NOT-A-HASH")])
        return honest_encode(msg.Advertise((*held, *lies)))

    session.encode_control = encode  # type: ignore[assignment]
    try:
        yield
    finally:
        session.encode_control = honest_encode  # type: ignore[assignment]


# ---------------------------------------------------------------------- running one seed


def run_seed(
    scenario: Scenario,
    *,
    root: Path | None = None,
    keep: bool = False,
    on_record: Callable[[RunRecord], object] | None = None,
) -> RunRecord:
    """Play `scenario` on a fresh simulated loop, in a fresh directory (removed afterwards unless `keep`),
    and judge it; `on_record` may read the journals before they go."""
    base = Path(tempfile.mkdtemp(prefix=f"cansync-sim-{scenario.seed}-", dir=root or _scratch()))
    try:
        rogue = scenario.rogue_index

        async def main(loop: SimulatedLoop) -> RunRecord:
            actor.set(HARNESS)
            loop.scratch = str(base)
            harness = Harness(scenario, loop, base)
            record = await harness.play()
            record.trace_digest = loop.trace_digest()
            return record

        if scenario.rogue is not None and rogue is not None:
            with rogue_wire(f"{node_name(rogue)}#", scenario.rogue, scenario.seed):
                record = run_simulated(scenario.seed, main)
        else:
            record = run_simulated(scenario.seed, main)
        record.failures = judge(record)
        if on_record is not None:
            on_record(record)
        return record  # type: ignore[no-any-return]
    finally:
        inline_sqlite.forget_all()
        if not keep:
            shutil.rmtree(base, ignore_errors=True)


def node_name(index: int) -> str:
    return chr(ord("a") + index) if index < 26 else f"n{index}"


def _scratch() -> Path:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() else Path(tempfile.gettempdir())


def _content(seed: int, number: int, size: int) -> bytes:
    if size == 0:
        return b""
    unique = number.to_bytes(8, "big")  # no two assets of a run share content
    return unique + random.Random(f"content:{seed}:{number}").randbytes(size - len(unique))


def _meta_key(record: Any) -> tuple[tuple[str, ...], str, bool]:
    return (tuple(record.tags), record.description, bool(record.trashed))
