"""A deterministic asyncio event loop: virtual time, a seeded choice among ready callbacks, no threads.

- Time is virtual. `time()` stands still while anything is ready to run and jumps to the next timer when
  nothing is: work costs no time, waits cost exactly what they say, and a 30 s timeout takes no wall time.
- Of the callbacks ready to run, the next one is drawn by a seeded `random.Random`. asyncio promises
  nothing about the order of two tasks that are both ready, so every order drawn is one a real loop may
  take; another seed explores another interleaving, and the same seed replays the same one.
- `run_in_executor` (and so `asyncio.to_thread`) calls the function inline, on the loop; its result
  still arrives through a future, so the caller yields as it would to a thread.
- There is no selector and no real I/O (sockets and subprocesses raise NotImplementedError). Everything
  a simulated agent talks to is in memory and wakes it through futures.

What else a run must not depend on, and how it does not: tasks and futures hash by their number in the
run (asyncio and the agents keep them in sets, whose order would otherwise follow memory addresses);
unnamed tasks are named by that number; the cyclic garbage collector is off during a run (its finalizers
would run at moments set by the whole process's history). Sets of strings iterate in an order fixed by
PYTHONHASHSEED: within one process a seed replays exactly; across processes, under the same hash seed
(bench/simulate.py runs itself under PYTHONHASHSEED=0).

`trace_digest()` folds every callback run, in order, with the virtual time: two runs of one seed that
reach the same digest took the same path.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import gc
import hashlib
import heapq
import logging
import random
import weakref
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

T = TypeVar("T")

actor: contextvars.ContextVar[str | None] = contextvars.ContextVar("simulated_actor", default=None)
"""Which simulated process a callback belongs to (an agent's incarnation, the harness): every task and
callback carries the context it was scheduled from, so a crash can stop exactly one agent's work."""

EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: virtual time 0 on the agents' wall clock


class Deadlock(RuntimeError):
    """Nothing is ready and no timer is set, yet the loop was asked to go on: every task waits on
    something that can never happen. `waiting` says where each task waits."""

    def __init__(self, message: str, waiting: str) -> None:
        super().__init__(f"{message}; waiting:\n{waiting}")
        self.waiting = waiting


class _Task(asyncio.Task):  # type: ignore[type-arg]
    """A task whose hash is its number in the run: TaskGroup, asyncio.wait and the agents keep tasks in
    sets, and a set's order follows the hashes; by the default hash (the address) two runs of one seed
    would cancel or wake the same tasks in different orders."""

    _serial = 0

    def __hash__(self) -> int:
        return self._serial


class _Future(asyncio.Future):  # type: ignore[type-arg]
    """A future hashed by its number in the run, for the same reason as `_Task`."""

    _serial = 0

    def __hash__(self) -> int:
        return self._serial


class SimulatedLoop(asyncio.BaseEventLoop):
    # BaseEventLoop's own state, which this loop schedules by (typeshed leaves it out)
    _ready: collections.deque[asyncio.Handle]
    _scheduled: list[Any]  # TimerHandles, read by their private _when and _scheduled
    _timer_cancelled_count: int
    _stopping: bool
    _asyncgens: Any
    _check_closed: Callable[[], None]

    def __init__(self, seed: int, *, epoch_ms: int = EPOCH_MS) -> None:
        super().__init__()
        self.seed = seed
        self.rng = random.Random(f"scheduler:{seed}")
        self.epoch_ms = epoch_ms
        self._now = 0.0
        self.steps = 0
        self._trace = hashlib.blake2b(digest_size=16)
        self.scratch = ""  # the run's directory: a random name, kept out of the trace
        self.steps_seen: list[str] | None = None  # every step's name, when a replay wants to compare runs
        self._tasks_made = 0
        self._futures_made = 0
        self._frozen: set[str] = set()
        self._graveyard: list[asyncio.Task[Any]] = []
        self._process_of: weakref.WeakKeyDictionary[asyncio.Task[Any], str | None] = weakref.WeakKeyDictionary()
        self._step_hooks: list[tuple[int, int, Callable[[], None]]] = []
        self._hooks_made = 0
        self.set_task_factory(self._make_task)  # type: ignore[arg-type]

    def _make_task(self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        # asyncio numbers unnamed tasks from a process-wide counter; number them per run instead, so a
        # task has the same name in every run of a seed
        self._tasks_made += 1
        if kwargs.get("name") is None:
            kwargs["name"] = f"{getattr(coro, '__qualname__', 'task')}#{self._tasks_made}"
        task = _Task(coro, loop=loop, **kwargs)
        task._serial = self._tasks_made
        context = kwargs.get("context")
        self._process_of[task] = context.get(actor) if context is not None else actor.get()
        return task

    def where_tasks_wait(self) -> str:
        lines = []
        for task in sorted(self.live_tasks(), key=lambda t: t.get_name()):
            where = " -> ".join(_await_chain(task.get_coro()))
            cancelling = f" (cancelled {task.cancelling()}x)" if task.cancelling() else ""
            lines.append(f"  {self._process_of.get(task)} {task.get_name()}{cancelling}: {where}")
        return "\n".join(lines)

    def is_frozen(self, task: asyncio.Task[Any]) -> bool:
        return self._process_of.get(task) in self._frozen

    def create_future(self) -> asyncio.Future[Any]:
        self._futures_made += 1
        future = _Future(loop=self)
        future._serial = -self._futures_made  # apart from the tasks' numbers
        return future

    def live_tasks(self) -> list[asyncio.Task[Any]]:
        """Unfinished tasks of processes still alive (a frozen process's tasks never finish)."""
        tasks = []
        # asyncio's registry of tasks is one set for the whole process: its order is not the run's
        for task in sorted(asyncio.all_tasks(self), key=lambda t: getattr(t, "_serial", 0)):
            if task.done():
                continue
            if self._process_of.get(task) in self._frozen:
                task._log_destroy_pending = False  # type: ignore[attr-defined]  # it died with its process
                continue
            tasks.append(task)
        return tasks

    # ------------------------------------------------------------------ time

    def time(self) -> float:
        return self._now

    # ------------------------------------------------------------------ processes

    def freeze(self, name: str) -> None:
        """The process `name` dies where it stands: none of its callbacks runs again (kill -9). What it
        held outside the loop (files, locks, its endpoint) the caller releases."""
        self._frozen.add(name)
        # hold its tasks: a task nobody references is collected, and closing its coroutine would run its
        # finally blocks (a file deleted, a journal write) as the dead process never could
        self._graveyard.extend(t for t in asyncio.all_tasks(self) if self._process_of.get(t) == name)

    def bury(self) -> None:
        """After the run: end the frozen processes' coroutines while the loop is closed, so their finally
        blocks find no loop to act through and do nothing."""
        assert self.is_closed()
        previous = logging.root.manager.disable
        logging.disable(logging.CRITICAL)  # what their cleanup would have logged never happened
        try:
            self._end_graveyard()
        finally:
            logging.disable(previous)

    def _end_graveyard(self) -> None:
        for task in self._graveyard:
            task._log_destroy_pending = False  # type: ignore[attr-defined]
            try:
                task.get_coro().close()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # noqa: BLE001 - a dead process's cleanup fails for want of a loop
                del exc
        self._graveyard.clear()

    def after_steps(self, steps: int, callback: Callable[[], None]) -> None:
        """Call `callback` once `steps` more callbacks have run: a point between two awaits of whatever is
        running then, rather than a moment of virtual time (many steps happen at one instant)."""
        self._hooks_made += 1
        heapq.heappush(self._step_hooks, (self.steps + steps, self._hooks_made, callback))

    def wall_ms(self) -> int:
        """Milliseconds since the epoch, as an agent's clock reads them."""
        return self.epoch_ms + int(self._now * 1000)

    # ------------------------------------------------------------------ scheduling

    def _run_once(self) -> None:
        scheduled = self._scheduled
        while scheduled and scheduled[0]._cancelled:
            self._timer_cancelled_count -= 1
            heapq.heappop(scheduled)._scheduled = False
        if not self._ready:
            if not scheduled:
                if self._stopping:
                    return
                raise Deadlock(
                    f"seed {self.seed}: nothing can run at virtual time {self._now:.3f} s", self.where_tasks_wait()
                )
            self._now = max(self._now, scheduled[0]._when)
        while scheduled and scheduled[0]._when <= self._now:
            handle = heapq.heappop(scheduled)
            handle._scheduled = False
            if handle._cancelled:
                self._timer_cancelled_count -= 1
            else:
                self._ready.append(handle)
        if not self._ready:
            return
        pick = self.rng.randrange(len(self._ready))
        if pick:
            self._ready.rotate(-pick)
        chosen = self._ready.popleft()
        if chosen._cancelled:  # type: ignore[attr-defined]
            return
        while self._step_hooks and self._step_hooks[0][0] <= self.steps:
            heapq.heappop(self._step_hooks)[2]()
        if self._frozen and chosen._context.get(actor) in self._frozen:  # type: ignore[attr-defined]
            return
        self.steps += 1
        name = _callback_name(chosen)
        if self.scratch and self.scratch in name:
            name = name.replace(self.scratch, "")
        self._trace.update(f"{self._now:.6f}:{name};".encode())
        if self.steps_seen is not None:
            self.steps_seen.append(f"{self._now:.6f} {name}")
        chosen._run()

    def trace_digest(self) -> str:
        return self._trace.hexdigest()

    def note(self, text: str) -> None:
        """Fold a fact of the run (a fault, an outcome) into the trace digest."""
        self._trace.update(f"{self._now:.6f}!{text};".encode())

    # what BaseEventLoop leaves to a selector loop: nothing here waits on file descriptors
    def _process_events(self, event_list: list[Any]) -> None:
        return None

    def _write_to_self(self) -> None:
        return None  # call_soon_threadsafe: nothing can be waiting in a select()

    # ------------------------------------------------------------------ executors: inline

    def run_in_executor(  # type: ignore[override]
        self, executor: Executor | None, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        self._check_closed()
        future: asyncio.Future[T] = self.create_future()
        try:
            result = func(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting caller, as a thread would
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            future.set_exception(exc)
        else:
            future.set_result(result)
        return future

    def set_default_executor(self, executor: Any) -> None:
        raise RuntimeError("the simulated loop runs executor work inline; it takes no executor")

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        return None


def _await_chain(coro: Any) -> list[str]:
    """Where a coroutine waits, outermost first, following what each frame awaits."""
    chain: list[str] = []
    while coro is not None and len(chain) < 12:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            chain.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
    return chain


def _callback_name(handle: asyncio.Handle) -> str:
    """A name for a callback that is the same in every run (no ids, no addresses)."""
    callback = handle._callback  # type: ignore[attr-defined]
    owner = getattr(callback, "__self__", None)
    if owner is None and type(callback).__name__ == "TaskStepMethWrapper":
        # the C task's step wrapper hides its task; its first referent is the task
        owner = next((r for r in gc.get_referents(callback) if isinstance(r, asyncio.Task)), None)
    if isinstance(owner, asyncio.Task):
        return owner.get_name()
    return getattr(callback, "__qualname__", type(callback).__name__)


def run_simulated(seed: int, main: Callable[[SimulatedLoop], Any], *, epoch_ms: int = EPOCH_MS) -> Any:
    """Run `main(loop)` (a coroutine function) to completion on a fresh simulated loop, then close it."""
    loop = SimulatedLoop(seed, epoch_ms=epoch_ms)
    asyncio.set_event_loop(loop)
    # the cyclic collector runs finalizers (a pooled connection's, a generator's) at moments that depend on
    # everything the process allocated before: off during a run, so only the seed decides what runs when
    collecting = gc.isenabled()
    gc.disable()
    try:
        context = contextvars.Context()
        task = loop.create_task(main(loop), context=context)
        return loop.run_until_complete(task)
    finally:
        try:
            _cancel_all(loop)
            loop._asyncgens.clear()  # the live ones ended with their agents
        finally:
            asyncio.set_event_loop(None)
            loop.close()
            loop.bury()
            if collecting:
                gc.enable()
            gc.collect()


def _cancel_all(loop: SimulatedLoop) -> None:
    tasks = loop.live_tasks()
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
