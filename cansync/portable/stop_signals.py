"""Ctrl-C and SIGTERM (and Ctrl-Break on Windows) stop a command cleanly, the same way on every system.

`loop.add_signal_handler` exists only on Unix event loops. `signal.signal` exists everywhere, so it is what
every system uses: the handler hands the stop to the event loop with `call_soon_threadsafe`, which also wakes
a loop that is waiting for I/O. The first signal asks for a clean stop and puts the previous handlers back,
so a second one stops the process at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, name)
)


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], object]) -> Iterator[None]:
    """Call `stop()` on the running loop when a stop signal arrives; call from the main thread."""
    loop = asyncio.get_running_loop()
    previous: dict[signal.Signals, Any] = {}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        previous.clear()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        restore()
        if not loop.is_closed():  # a signal can land while asyncio.run is closing the loop
            loop.call_soon_threadsafe(stop)

    for signum in STOP_SIGNALS:
        previous[signum] = signal.signal(signum, on_signal)
    try:
        yield
    finally:
        restore()
