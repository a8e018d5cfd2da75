"""What users do to the stores during a trial: ingest, retag, trash and restore, over the public API.

It remembers what every store must end up holding: every asset ever ingested, and for each asset
the record of the last metadata edit (edits are spaced a few ms apart, so the last one in real time
carries the largest timestamp and must win everywhere).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from tests.faults.mesh import MeshNode
from tests.helpers import plain_http
from tests.helpers.assets import ingest

KiB = 1024
EDIT_SPACING_S = 0.005


@dataclass(frozen=True)
class ExpectedMeta:
    tags: tuple[str, ...]
    description: str
    trashed: bool


@dataclass
class Expectations:
    assets: set[str] = field(default_factory=set)
    meta: dict[str, ExpectedMeta] = field(default_factory=dict)
    settled: set[str] = field(default_factory=set)  # held by every store at the last convergence


def _record_meta(record: dict[str, object]) -> ExpectedMeta:
    return ExpectedMeta(tuple(record["tags"]), str(record["description"]), bool(record["trashed"]))  # type: ignore[arg-type]


class Workload:
    def __init__(self, expected: Expectations) -> None:
        self.expected = expected
        self._counter = 0

    def ingest_on(self, node: MeshNode, rng: random.Random, size: int | None = None) -> str:
        self._counter += 1
        size = size if size is not None else rng.randint(1 * KiB, 64 * KiB)
        asset = ingest(node.api, rng.randbytes(size), f"t{self._counter}.bin")
        self.expected.assets.add(asset)
        return asset

    def retag_on(self, node: MeshNode, asset: str, rng: random.Random) -> None:
        self._counter += 1
        tags = ",".join(sorted({f"tag{rng.randrange(1000)}" for _ in range(rng.randint(1, 3))}))
        body = {"tags": tags, "description": f"edit {self._counter} on {node.name}"}
        self._edit(node, "PATCH", f"{node.api}/asset/{asset}", asset, json=body)

    def toggle_trash_on(self, node: MeshNode, asset: str) -> None:
        current = plain_http.get(f"{node.api}/list", params={"include_trashed": "true"}, timeout=30)
        current.raise_for_status()
        trashed = next(r["trashed"] for r in current.json()["data"] if r["hash"] == asset)
        action = "restore" if trashed else "trash"
        self._edit(node, "POST", f"{node.api}/asset/{asset}/{action}", asset)

    def _edit(self, node: MeshNode, method: str, url: str, asset: str, **kwargs: object) -> None:
        time.sleep(EDIT_SPACING_S)
        response = plain_http.request(method, url, timeout=30, **kwargs)  # type: ignore[arg-type]
        response.raise_for_status()
        self.expected.meta[asset] = _record_meta(response.json()["data"])
        time.sleep(EDIT_SPACING_S)
