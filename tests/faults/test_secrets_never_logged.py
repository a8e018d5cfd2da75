"""The passphrase, the sync key and the node secret key never show in a log or a command's output.

A short real scenario (two stores, two agents, ingest, retag, trash, kill -9 and restart, a cut store
link) with a distinctive passphrase and sync key; then every agent log line, every store log, and
the output of `journal inspect` (table and --json), `journal replay --json`, `journal verify`,
`status` and `ticket` are searched for the secrets in every spelling a log might use.
"""

from __future__ import annotations

import base64
import random
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.faults import checks
from tests.faults.mesh import Mesh
from tests.faults.workload import Expectations, Workload
from tests.helpers.store_process import wait_until

PASSPHRASE = f"plover-{secrets.token_hex(6)}-quince marmalade"
SYNC_KEY = f"synckey-{secrets.token_hex(8)}"
KiB = 1024


def spellings(secret: bytes) -> set[str]:
    """The ways a 32-byte key tends to end up in text."""
    forms = {
        secret.hex(),
        secret.hex().upper(),
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode(),
        base64.b32encode(secret).decode(),
    }
    forms |= {f.rstrip("=") for f in forms} | {base64.b32encode(secret).decode().rstrip("=").lower()}
    return forms


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    group = Mesh(tmp_path, size=2, passphrase=PASSPHRASE, sync_key=SYNC_KEY)
    try:
        yield group
    finally:
        group.close()


def test_no_secret_appears_in_any_log_or_command_output(mesh: Mesh):
    a, b = mesh.nodes
    rng = random.Random(5)
    expected = Expectations()
    workload = Workload(expected)
    first = workload.ingest_on(a, rng, size=200 * KiB)
    workload.ingest_on(b, rng, size=3 * KiB)
    assert not checks.wait_for_convergence(mesh, expected, 30)[0]
    workload.retag_on(b, first, rng)
    workload.toggle_trash_on(a, first)
    assert not checks.wait_for_convergence(mesh, expected, 30)[0]
    assert b.agent is not None
    b.agent.kill9()
    b.start_agent()
    assert a.agent is not None
    logged_before_cut = len(a.agent.log_text())
    a.link.cut()
    workload.ingest_on(b, rng, size=40 * KiB)
    # the agent logs its failing store calls meanwhile: until its push of b's new asset has failed too (~0.1 s)
    failing_push = f"store {a.link.url} unreachable on /sync/push"
    wait_until(lambda: failing_push in a.agent.log_text()[logged_before_cut:], timeout=10)  # type: ignore[union-attr]
    a.link.restore()
    # settling is the fault trials' business; here it only gives the agents time to log the recovery
    checks.wait_for_convergence(mesh, expected, 10)

    outputs: dict[str, str] = {}
    commands = (
        ("journal", "inspect"),
        ("journal", "inspect", "--json"),
        ("journal", "replay", "--json"),
        ("journal", "verify"),
        ("status",),
        ("ticket",),
    )
    # all at once (each only reads): one by one, their interpreters' start-ups took most of the test
    running = {(node.name, command): node.cli_process(*command) for node in mesh.nodes for command in commands}
    for (name, command), process in running.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"cansync {' '.join(command)} on {name}: {err}"
        outputs[f"{name}: cansync {' '.join(command)}"] = out + err
    with ThreadPoolExecutor(len(mesh.nodes)) as pool:  # (shutdown lines are logs too)
        list(pool.map(lambda node: node.agent.stop(), mesh.nodes))  # type: ignore[union-attr]
    for node in mesh.nodes:
        outputs[f"{node.name}: agent log"] = node.home.joinpath("agent.log").read_text(errors="replace")
        outputs[f"{node.name}: store log"] = node.store.log_text()

    # the search looks where the secrets would be: the logs and outputs are real and about these nodes
    assert all(f"{n.agent.endpoint_id[:10]}" in outputs[f"{n.name}: agent log"] for n in mesh.nodes)  # type: ignore[union-attr]
    assert "peer_authenticated" in outputs["a: cansync journal inspect --json"]
    assert mesh.nodes[1].agent.endpoint_id in outputs["b: cansync ticket"]  # type: ignore[union-attr]
    assert "restarted" in outputs["b: cansync journal inspect --json"]

    forbidden = {"passphrase": {PASSPHRASE}, "sync key": {SYNC_KEY}}
    for node in mesh.nodes:
        key = node.data_path("node.key").read_bytes()
        assert len(key) == 32
        forbidden[f"node secret of {node.name}"] = spellings(key)
    leaks = [
        f"{what} in {where}, line {number}: {line[:200]}"
        for where, text in outputs.items()
        for number, line in enumerate(text.splitlines(), 1)
        for what, forms in forbidden.items()
        if any(form in line for form in forms)
    ]
    assert not leaks, "secrets leaked:\n" + "\n".join(leaks[:20])
    print(f"searched {sum(len(t.splitlines()) for t in outputs.values())} lines in {len(outputs)} logs and outputs")
