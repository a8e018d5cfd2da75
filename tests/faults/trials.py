"""One seeded fault trial on a running mesh, and a session that keeps a mesh healthy across trials.

A trial's seed decides everything it does: the fault kind (seed modulo the number of kinds, so
consecutive seeds cover every kind), how many user operations, which ones on which nodes, and
where among them the fault strikes. Replaying a seed repeats the same plan; the mesh it meets may
hold other assets, which the plan does not depend on beyond "some settled asset to edit".
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults import checks
from tests.faults.faults import KINDS, Fault, inject
from tests.faults.mesh import Mesh
from tests.faults.workload import Expectations, Workload

CONVERGE_TIMEOUT = 30.0  # a healthy mesh settles in seconds; dial backoff after a restart stays under 10 s
PASSPHRASE = "fault trials passphrase"
SYNC_KEY = "fault-trials-sync-key"
SMALL_DISK_NODE = 2  # node c keeps its data_dir on a small tmpfs
_WORTH_SHOWING = re.compile(
    r"\b(WARNING|ERROR|CRITICAL)\b|Traceback|Error:|===== start|duplicate connection|replaced by|disk is full"
)


class MeshNotReady(AssertionError):
    """A freshly started mesh did not settle on its first assets (no fault injected yet)."""


@dataclass
class TrialResult:
    seed: int
    kind: str
    steps: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    converge_s: float = 0.0
    duration_s: float = 0.0
    log_excerpt: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def report(self) -> str:
        lines = [f"trial seed={self.seed} kind={self.kind} ok={self.ok} ({self.duration_s:.1f} s)"]
        lines += [f"  step: {s}" for s in self.steps]
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  PROBLEM: {p}" for p in self.problems]
        if self.log_excerpt:
            lines += ["  agent log lines during the trial (warnings, errors, starts):", self.log_excerpt]
        lines.append(f"  replay: bash tests/isolate.sh .venv/bin/python bench/fault_soak.py --replay {self.seed}")
        return "\n".join(lines)


def kind_for(seed: int) -> str:
    return KINDS[seed % len(KINDS)]


def run_trial(mesh: Mesh, expected: Expectations, seed: int, converge_timeout: float = CONVERGE_TIMEOUT) -> TrialResult:
    rng = random.Random(seed)
    kind = kind_for(seed)
    result = TrialResult(seed, kind)
    started = time.monotonic()
    log_offsets = {n.name: n.home.joinpath("agent.log").stat().st_size for n in mesh.nodes}
    workload = Workload(expected)
    op_count = rng.randint(2, 4)
    fault_at = rng.randint(0, op_count - 1)  # at least one operation happens while the fault holds
    fault: Fault | None = None
    try:
        for index in range(op_count + 1):
            if index == fault_at:
                time.sleep(rng.uniform(0.0, 0.4))  # land somewhere in the sync of the last operation
                fault = inject(kind, mesh, rng, workload)
                result.steps.append(f"FAULT {fault.detail}")
                result.notes += fault.notes
            if index < op_count:
                result.steps.append(_user_operation(mesh, workload, rng, fault))
        time.sleep(rng.uniform(0.0, 1.0))
        if fault is not None:
            fault.heal()
            result.steps.append(f"heal {fault.kind} on {fault.node.name}")
        _restart_the_dead(mesh, result)
        problems, result.converge_s = checks.wait_for_convergence(mesh, expected, converge_timeout)
        result.problems += problems
        for node in mesh.nodes:
            result.problems += checks.file_problems(node, expected)
        result.problems += checks.journal_problems(mesh)
        result.problems += checks.agent_problems(mesh)
    except Exception as exc:  # noqa: BLE001  (a harness step failing is a failed trial, with its story)
        result.problems.append(f"{type(exc).__name__}: {exc}")
    result.duration_s = time.monotonic() - started
    if result.ok:
        expected.settled = set(expected.assets)
    else:
        result.log_excerpt = _log_excerpt(mesh, log_offsets)
    return result


def _user_operation(mesh: Mesh, workload: Workload, rng: random.Random, fault: Fault | None) -> str:
    nodes = [n for n in mesh.nodes if not (fault is not None and fault.store_down and n is fault.node)]
    node = rng.choice(nodes)
    choice = rng.random()
    settled = sorted(workload.expected.settled)
    if choice < 0.5 or not settled:
        asset = workload.ingest_on(node, rng)
        return f"ingest {asset[:12]} on {node.name}"
    asset = rng.choice(settled)
    if choice < 0.75:
        workload.retag_on(node, asset, rng)
        return f"retag {asset[:12]} on {node.name}"
    workload.toggle_trash_on(node, asset)
    return f"trash/restore {asset[:12]} on {node.name} -> trashed={workload.expected.meta[asset].trashed}"


def _restart_the_dead(mesh: Mesh, result: TrialResult) -> None:
    """Whatever died that the fault did not kill is restarted too, and noted: an agent must not exit
    because of a fault done to something else (it is a problem unless the fault was disk_full)."""
    for node in mesh.nodes:
        if not node.store.is_running():
            result.problems.append(f"store {node.name} was down after heal")
            node.restart_store()
        if not node.agent_running():
            code = node.agent.process.returncode if node.agent else None
            message = f"agent {node.name} had exited (code {code}) by the time the fault was healed; restarted it"
            if result.kind == "disk_full" and node.disk is not None:
                result.notes.append(message)
            else:
                result.problems.append(message)
            node.start_agent()


def _log_excerpt(mesh: Mesh, offsets: dict[str, int], limit: int = 15) -> str:
    lines: list[str] = []
    for node in mesh.nodes:
        path = node.home / "agent.log"
        with open(path, "rb") as handle:
            handle.seek(offsets.get(node.name, 0))
            text = handle.read().decode(errors="replace")
        picked = [f"    [{node.name}] {line[:400]}" for line in text.splitlines() if _WORTH_SHOWING.search(line)]
        lines += picked[-limit:]
    return "\n".join(lines)


class MeshSession:
    """Hands out a converged mesh; after a failed trial the next one gets a fresh mesh (a broken one
    would fail every later trial for the same reason)."""

    def __init__(self, base: Path, converge_timeout: float = CONVERGE_TIMEOUT) -> None:
        self.base = base
        self.converge_timeout = converge_timeout
        self.generation = 0
        self.mesh: Mesh | None = None
        self.expected = Expectations()

    def healthy_mesh(self) -> tuple[Mesh, Expectations]:
        if self.mesh is None:
            self.generation += 1
            self.mesh = Mesh(
                self.base / f"mesh{self.generation}",
                passphrase=PASSPHRASE,
                sync_key=SYNC_KEY,
                small_disk_node=SMALL_DISK_NODE,
            )
            self.expected = Expectations()
            self._seed_assets(self.mesh)
        return self.mesh, self.expected

    def _seed_assets(self, mesh: Mesh) -> None:
        """A few assets everywhere, so the first trial has something to edit."""
        workload = Workload(self.expected)
        rng = random.Random(self.generation)
        for node in mesh.nodes:
            workload.ingest_on(node, rng)
        problems, _ = checks.wait_for_convergence(mesh, self.expected, CONVERGE_TIMEOUT)
        if problems:
            excerpt = _log_excerpt(mesh, {})
            raise MeshNotReady(f"a fresh mesh did not converge on its first assets: {problems}\n{excerpt}")
        self.expected.settled = set(self.expected.assets)

    def run(self, seed: int) -> TrialResult:
        try:
            mesh, expected = self.healthy_mesh()
        except MeshNotReady as exc:
            self.discard()
            return TrialResult(seed, kind_for(seed), problems=[f"before the trial: {exc}"])
        result = run_trial(mesh, expected, seed, self.converge_timeout)
        if not result.ok:
            self.discard()
        return result

    def discard(self) -> None:
        if self.mesh is not None:
            self.mesh.close()
            self.mesh = None

    close = discard
