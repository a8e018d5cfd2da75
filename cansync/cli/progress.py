"""`cansync run` on a terminal: the sync's progress as two live bars (assets received, assets sent), with
bytes, rate and time left. Not on a terminal, the agent's own once-a-minute summary lines say the same.

Log lines keep flowing above the bars: while the bars are live, the log handler writes through the
console that draws them.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

if TYPE_CHECKING:
    from cansync.agent.runtime import Agent

REFRESH_SECS = 1.0
MiB = 1024 * 1024


def wants_progress(stream: object = sys.stderr) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


async def show_progress(agent: Agent, handler: logging.Handler | None) -> None:
    """Draw the bars until cancelled (the agent stops)."""
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[moved]}"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, redirect_stderr=True, transient=False) as bars:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)  # now the console's proxy: log lines print above the bars
        receiving = bars.add_task("received", total=None, moved="", rate="")
        sending = bars.add_task("sent", total=None, moved="", rate="")
        try:
            while True:
                received, sent, bytes_in, bytes_out, wanted, owed = agent.progress()
                rates = agent.rates()
                bars.update(
                    receiving, completed=received, total=received + wanted,
                    moved=f"{bytes_in / MiB:,.1f} MiB", rate=f"{rates['bytes_in_per_s'] / MiB:,.1f} MiB/s",
                )  # fmt: skip
                bars.update(
                    sending, completed=sent, total=sent + owed,
                    moved=f"{bytes_out / MiB:,.1f} MiB", rate=f"{rates['bytes_out_per_s'] / MiB:,.1f} MiB/s",
                )  # fmt: skip
                await asyncio.sleep(REFRESH_SECS)
        finally:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(sys.__stderr__)
