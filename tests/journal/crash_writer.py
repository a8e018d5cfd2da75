"""A writer process for the crash test: appends tagged batches from many coroutines until killed.

Each batch's events carry {"batch": id, "size": n, "i": index}, so after a SIGKILL the test can check
that every batch in the journal is whole. Prints "committed <count>" after each commit it sees.
"""

from __future__ import annotations

import asyncio
import random
import sys
import uuid
from pathlib import Path

from cansync.core.events import Event, EventKind
from cansync.journal.recorder import Journal


async def _appender(journal: Journal, rng: random.Random) -> None:
    while True:
        batch_id, size = uuid.uuid4().hex, rng.randint(1, 400)
        events = [
            Event(
                EventKind.TRANSFER_CHECKPOINTED,
                peer=f"{rng.getrandbits(256):064x}",
                hash=f"{rng.getrandbits(256):064x}",
                data={"batch": batch_id, "size": size, "i": i, "direction": "in", "offset": i * 65536},
            )
            for i in range(size)
        ]
        journaled = await journal.append(events)
        print(f"committed {journaled[-1].seq}", flush=True)


async def main(path: Path, appenders: int) -> None:
    journal = await Journal.open(path)
    rng = random.Random()
    await asyncio.gather(*(_appender(journal, random.Random(rng.random())) for _ in range(appenders)))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
