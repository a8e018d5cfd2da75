"""The invariants every trial ends with, each returning the problems it found (empty: all good).

- every store holds exactly the assets ever ingested, and they agree on every record's metadata
  (tags, description, trashed), which is the last edit made anywhere;
- every asset file's bytes hash to the hash in its name, and no asset has two files;
- every agent's journal chain verifies (`cansync journal verify`, exit 0).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.faults.mesh import Mesh, MeshNode
from tests.faults.workload import Expectations, ExpectedMeta
from tests.helpers import plain_http
from tests.helpers.assets import file_sha256

_ASSET_FILE = re.compile(r"^(\d+)_([0-9a-f]{64})")


def store_records(node: MeshNode) -> list[dict[str, object]]:
    response = plain_http.get(f"{node.api}/list", params={"include_trashed": "true"}, timeout=30)
    response.raise_for_status()
    return list(response.json()["data"])


def _meta_of(record: dict[str, object]) -> ExpectedMeta:
    return ExpectedMeta(tuple(record["tags"]), str(record["description"]), bool(record["trashed"]))  # type: ignore[arg-type]


def convergence_problems(mesh: Mesh, expected: Expectations) -> list[str]:
    problems: list[str] = []
    views: dict[str, dict[str, ExpectedMeta]] = {}
    for node in mesh.nodes:
        try:
            records = store_records(node)
        except httpx.HTTPError as exc:
            problems.append(f"store {node.name} ({node.store.url}) did not answer /list: {exc}")
            continue
        counts = Counter(str(r["hash"]) for r in records)
        twice = sorted(h[:12] for h, n in counts.items() if n > 1)
        if twice:
            problems.append(f"store {node.name} lists these assets more than once: {twice}")
        views[node.name] = {str(r["hash"]): _meta_of(r) for r in records}
        held = set(views[node.name])
        missing, extra = expected.assets - held, held - expected.assets
        if missing:
            problems.append(f"store {node.name} lacks {len(missing)} assets: {sorted(h[:12] for h in missing)[:8]}")
        if extra:
            problems.append(f"store {node.name} holds {len(extra)} assets nobody ingested: {sorted(extra)[:4]}")
    for asset in sorted(expected.assets):
        seen = {name: view[asset] for name, view in views.items() if asset in view}
        if len(set(seen.values())) > 1:
            problems.append(f"stores disagree on the metadata of {asset[:12]}: {seen}")
        want = expected.meta.get(asset)
        if want is not None:
            wrong = {name: meta for name, meta in seen.items() if meta != want}
            if wrong:
                problems.append(f"{asset[:12]}: the last edit {want} did not win on {wrong}")
    return problems


def wait_for_convergence(mesh: Mesh, expected: Expectations, timeout: float) -> tuple[list[str], float]:
    """Poll until no convergence problem is left; return the last problems and the seconds taken."""
    started = time.monotonic()
    while True:
        problems = convergence_problems(mesh, expected)
        elapsed = time.monotonic() - started
        if not problems or elapsed > timeout:
            return problems, elapsed
        time.sleep(0.05)


def file_problems(node: MeshNode, expected: Expectations) -> list[str]:
    root: Path = node.store.root
    problems: list[str] = []
    files: dict[str, list[Path]] = {}
    for folder in (root, root / ".trash"):
        if folder.is_dir():
            for path in folder.iterdir():
                match = _ASSET_FILE.match(path.name)
                if path.is_file() and match:
                    files.setdefault(match.group(2), []).append(path)
    for asset, paths in sorted(files.items()):
        if len(paths) > 1:
            problems.append(f"store {node.name}: asset {asset[:12]} has {len(paths)} files: {[str(p) for p in paths]}")
        for path in paths:
            if file_sha256(path) != asset:
                problems.append(f"store {node.name}: {path} does not hash to its name")
    if set(files) != expected.assets:
        problems.append(
            f"store {node.name}: asset files for {len(files)} hashes on disk, {len(expected.assets)} expected "
            f"(missing {sorted(h[:12] for h in expected.assets - set(files))[:6]})"
        )
    return problems


def journal_problems(mesh: Mesh) -> list[str]:
    """`cansync journal verify` on every node at once; each must exit 0."""
    runs = {node.name: node.cli_process("journal", "verify") for node in mesh.nodes}
    problems: list[str] = []
    for name, process in runs.items():
        out, err = process.communicate(timeout=120)
        if process.returncode != 0:
            problems.append(f"journal verify on {name} exited {process.returncode}: {(out + err).strip()[-600:]}")
    return problems


def agent_problems(mesh: Mesh) -> list[str]:
    return [
        f"agent {node.name} exited by itself (code {node.agent.process.returncode if node.agent else None})"
        for node in mesh.nodes
        if not node.agent_running()
    ]
