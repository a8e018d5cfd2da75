"""Many seeds: each run alone (`run_one`), or a campaign over worker processes (`run_campaign`).

A seed is a whole run: its scenario is drawn from it and its loop schedules by it, so `run_one(seed)`
twice gives the same outcome and the same trace digest. A run that raises (a deadlock, a harness error)
is a failed seed like any other, never a crashed campaign.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import statistics
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field

from cansync.core.events import EventKind
from cansync.journal.reader import JournalReader
from cansync.simulation.harness import RunRecord, run_seed
from cansync.simulation.scenario import draw


@dataclass
class SeedOutcome:
    seed: int
    agents: int
    description: str
    failures: list[str]
    trace_digest: str = ""
    wall_s: float = 0.0
    virtual_s: float = 0.0
    steps: int = 0
    converged_s: float | None = None
    uploads: dict[str, int] = field(default_factory=dict)  # assets each agent sent (transfer_completed out)
    trace: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def upload_spread(self) -> float:
        """The busiest agent's uploads over the mean (1.0: perfectly even)."""
        counts = list(self.uploads.values())
        mean = statistics.fmean(counts) if counts else 0.0
        return max(counts) / mean if mean else 0.0

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data.pop("trace")
        return data


def run_one(
    seed: int, agents: int | None = None, *, mesh: bool = False, small: bool = False, keep_trace: bool = False
) -> SeedOutcome:
    scenario = draw(seed, agents, mesh=mesh, small=small)
    started = time.perf_counter()
    outcome = SeedOutcome(seed, scenario.agents, scenario.describe(), [])
    try:
        record = run_seed(scenario, on_record=_count_uploads(outcome))
    except Exception as exc:  # noqa: BLE001 - a run that raises is a failed seed, with what it raised
        outcome.failures = [f"harness: {type(exc).__name__}: {exc}"]
        if keep_trace:
            outcome.trace = traceback.format_exc().splitlines()
    else:
        outcome.failures = [str(f) for f in record.failures]
        outcome.trace_digest = record.trace_digest
        outcome.virtual_s = record.end_ms / 1000
        outcome.steps = record.steps
        outcome.converged_s = record.converged_ms / 1000 if record.converged_ms is not None else None
        if keep_trace:
            outcome.trace = list(record.trace)
    outcome.wall_s = time.perf_counter() - started
    return outcome


def _count_uploads(outcome: SeedOutcome) -> Callable[[RunRecord], None]:
    def count(record: RunRecord) -> None:
        for node in record.nodes:
            path = node.data_dir / "journal.db"
            if not path.exists():
                continue
            with JournalReader.open(path) as reader:
                completed = reader.read(kinds=[EventKind.TRANSFER_COMPLETED.value])
                outcome.uploads[node.name] = sum(1 for e in completed if e.data.get("direction") == "out")

    return count


def _work(job: tuple[int, int | None, bool, bool]) -> SeedOutcome:
    seed, agents, mesh, small = job
    return run_one(seed, agents, mesh=mesh, small=small)


def _quiet_worker() -> None:
    logging.disable(logging.CRITICAL)  # thousands of agents' routine lines; failures say what matters


def run_campaign(
    seeds: Iterable[int],
    agents: int | None = None,
    *,
    mesh: bool = False,
    small: bool = False,
    workers: int | None = None,
) -> Iterator[SeedOutcome]:
    """Every seed's outcome, in seed order, computed over `workers` processes (default: one per CPU)."""
    jobs = [(seed, agents, mesh, small) for seed in seeds]
    count = workers or os.cpu_count() or 1
    if count <= 1 or len(jobs) <= 1:
        _quiet_worker()
        try:
            yield from map(_work, jobs)
        finally:
            logging.disable(logging.NOTSET)
        return
    context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    with context.Pool(count, initializer=_quiet_worker, maxtasksperchild=200) as pool:
        yield from pool.imap(_work, jobs, chunksize=4)
