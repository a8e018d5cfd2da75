"""The faults a trial injects, each undone by its heal().

- agent_kill9: SIGKILL one agent; heal restarts it with the same config.
- store_kill: SIGKILL one store; the agent and the users see it gone; heal restarts it on its port.
- sse_drop: cut the TCP link between one agent and its store: its SSE stream and any pull, push or
  catch-up in flight die and new connections are refused; heal lets it connect again.
- peer_cut: a multi-MiB asset is ingested on one node and, as soon as a peer has journaled the first
  checkpoint of receiving it, the sending agent is SIGKILLed: the QUIC connection is cut mid-transfer
  from the receiver's side (this harness cannot cut a QUIC connection between two live agents, so the
  sender's death is the cut); heal restarts the sender.
- disk_full: the small-disk node's data_dir (its journal and staging) is filled to ENOSPC while the
  workload goes on; heal frees the space.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from tests.faults.mesh import Mesh, MeshNode
from tests.faults.workload import Workload

KINDS = ("agent_kill9", "store_kill", "sse_drop", "peer_cut", "disk_full")
MiB = 1024 * 1024


@dataclass
class Fault:
    kind: str
    node: MeshNode
    detail: str = ""
    store_down: bool = False  # the workload must leave this node's store alone until heal
    notes: list[str] = field(default_factory=list)

    def heal(self) -> None:
        if self.kind in ("agent_kill9", "peer_cut"):
            self.node.start_agent()
        elif self.kind == "store_kill":
            self.node.restart_store()
        elif self.kind == "sse_drop":
            self.node.link.restore()
        elif self.kind == "disk_full":
            self.node.disk.free()  # type: ignore[union-attr]


def inject(kind: str, mesh: Mesh, rng: random.Random, workload: Workload) -> Fault:
    if kind == "disk_full":
        node = next(n for n in mesh.nodes if n.disk is not None)
    else:
        node = rng.choice(mesh.nodes)
    if kind == "agent_kill9":
        assert node.agent is not None
        node.agent.kill9()
        return Fault(kind, node, f"kill -9 agent {node.name}")
    if kind == "store_kill":
        node.kill_store()
        return Fault(kind, node, f"kill -9 store {node.name} (port {node.store.port})", store_down=True)
    if kind == "sse_drop":
        before = node.link.connections
        node.link.cut()
        return Fault(kind, node, f"cut agent {node.name}'s link to its store ({before} connections so far)")
    if kind == "peer_cut":
        return _cut_peer_mid_transfer(mesh, node, rng, workload)
    if kind == "disk_full":
        assert node.disk is not None
        filled = node.disk.fill()
        return Fault(kind, node, f"filled {node.name}'s data_dir with {filled / MiB:.1f} MiB (ENOSPC)")
    raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")


def _cut_peer_mid_transfer(mesh: Mesh, sender: MeshNode, rng: random.Random, workload: Workload) -> Fault:
    size = rng.randint(8, 16) * MiB
    asset = workload.ingest_on(sender, rng, size=size)
    receivers = [n for n in mesh.nodes if n is not sender]
    query = "SELECT count(*) FROM events WHERE kind=? AND hash=?"
    deadline = time.monotonic() + 15
    started = False
    while time.monotonic() < deadline:
        if any(r.journal_rows(query, "transfer_checkpointed", asset) not in ([], [(0,)]) for r in receivers):
            started = True
            break
        time.sleep(0.01)
    assert sender.agent is not None
    sender.agent.kill9()
    done = [r.name for r in receivers if r.journal_rows(query, "transfer_completed", asset) not in ([], [(0,)])]
    fault = Fault(
        "peer_cut",
        sender,
        f"ingested {size // MiB} MiB {asset[:12]} on {sender.name}, kill -9 its agent "
        + ("once a peer checkpointed it" if started else "(no peer checkpointed it within 15 s)")
        + (f"; already complete on {done}" if done else ""),
    )
    if not started:
        fault.notes.append("peer_cut: the transfer did not start within 15 s, so the cut was not mid-transfer")
    return fault
