"""Ctrl-C and SIGTERM reach the event loop through signal.signal, the way every system (Windows too) allows."""

from __future__ import annotations

import asyncio
import signal

from cansync.portable.stop_signals import STOP_SIGNALS, stop_on_signals


async def test_a_stop_signal_calls_stop_on_the_loop_and_puts_the_old_handlers_back() -> None:
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    stopped = asyncio.Event()
    with stop_on_signals(stopped.set):
        assert all(signal.getsignal(signum) is not before[signum] for signum in STOP_SIGNALS)
        signal.raise_signal(signal.SIGTERM)
        await asyncio.wait_for(stopped.wait(), 10)
        # the first signal handed the stop over: a second one would act as before (stop at once)
        assert {signum: signal.getsignal(signum) for signum in STOP_SIGNALS} == before
    assert {signum: signal.getsignal(signum) for signum in STOP_SIGNALS} == before


async def test_ctrl_c_stops_a_task_that_waits_in_the_loop() -> None:
    async def serve() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "stopped cleanly"
        return "never"

    task = asyncio.create_task(serve())
    await asyncio.sleep(0)
    with stop_on_signals(task.cancel):
        signal.raise_signal(signal.SIGINT)
        assert await asyncio.wait_for(task, 10) == "stopped cleanly"


async def test_leaving_without_a_signal_restores_the_handlers() -> None:
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    with stop_on_signals(lambda: None):
        pass
    assert {signum: signal.getsignal(signum) for signum in STOP_SIGNALS} == before
    assert STOP_SIGNALS[:2] == (signal.SIGINT, signal.SIGTERM)
