"""The concurrent strategy of the consumer loop, for handlers that wait on the outside world (HTTP
calls under rate limits: the submitter). The loop's thread never waits for a handler:

    loop thread                                   event-loop thread (asyncio)
    poll → decode → submit(message) ────────────▶ await handle(message) (many concurrently)
    drain completions ◀──────────────────────────  outputs or error
    loop.finish: produce outputs; every commit interval the loop flushes, then commits each
    partition's contiguous completed prefix (offset + 1)

- Back-pressure: a partition with `max_in_flight_per_partition` messages unfinished is paused by
  the loop (it keeps polling, heartbeating and serving other partitions) and resumed when its
  backlog halves.
- Revoke and stop wind handlers down the same way: their asyncio tasks are cancelled at once (a
  message whose work has not begun is given back: the partition's next owner replays it); a
  handler may finish work it cannot abandon (an SP-API call already on the wire, whose answer must
  not be lost) and return its outputs. The strategy waits up to `revoke_drain_s` /
  `shutdown_drain_s` for that and drops what still runs; the loop then commits the prefix.
- A handler raising RetryableError is run again after `retry_pause_s`; any other exception
  dead-letters its message. `on_close` runs on the event loop after the last commit (closing
  HTTP clients).

Handlers return `Outgoing` events and may return `RawOutgoing` records for non-event topics such
as compacted state topics (value None = tombstone).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from .bus import Record, TopicPartition
from .consumer_loop import ConsumerLoop, Incoming, Outgoing, Polled, RawOutgoing, RetryableError

log = structlog.get_logger()

AsyncHandler = Callable[[Incoming], Awaitable[list[Outgoing | RawOutgoing]]]
T = TypeVar("T")


@dataclass(slots=True)
class _Task:
    polled: Polled
    started: float  # perf_counter when it was polled: what pipeline_processing_duration_seconds measures
    future: concurrent.futures.Future | None = None
    running: asyncio.Task | None = None  # set on the event-loop thread by _launch
    cancelled: bool = False


class ConcurrentStrategy:
    def __init__(
        self,
        handle: AsyncHandler,
        *,
        on_close: Callable[[], Coroutine[Any, Any, object]] | None = None,
        max_in_flight_per_partition: int = 2_000,
        commit_interval_s: float = 1.0,
        revoke_drain_s: float = 5.0,
        shutdown_drain_s: float = 20.0,
        retry_pause_s: float = 1.0,
        event_loop: asyncio.AbstractEventLoop | None = None,
    ):
        self.handle = handle
        self.on_close = on_close
        self.max_in_flight_per_partition = max(1, max_in_flight_per_partition)
        self.commit_interval_s = commit_interval_s
        self.revoke_drain_s = revoke_drain_s
        self.shutdown_drain_s = shutdown_drain_s
        self.retry_pause_s = retry_pause_s
        self._tasks: dict[tuple[str, int, int], _Task] = {}
        self._done: queue.SimpleQueue[tuple[_Task, concurrent.futures.Future]] = queue.SimpleQueue()
        self._event_loop = event_loop or _new_event_loop()
        self._thread: threading.Thread | None = None
        self._loop: ConsumerLoop  # set by start(), which the loop calls before anything else

    # -- the asyncio side ------------------------------------------------------------------
    @property
    def event_loop(self) -> asyncio.AbstractEventLoop:
        return self._event_loop

    def start_event_loop(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._event_loop.run_forever, name="handlers", daemon=True)
            self._thread.start()

    def run_in_event_loop(self, coroutine: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run a coroutine on the handlers' event loop from another thread (set-up and clean-up of
        async resources such as HTTP clients) and return its result."""
        self.start_event_loop()
        return asyncio.run_coroutine_threadsafe(coroutine, self._event_loop).result(timeout_s)

    def _stop_event_loop(self) -> None:
        if self._thread is not None:
            self._event_loop.call_soon_threadsafe(self._event_loop.stop)
            self._thread.join(10)
            self._thread = None

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    # -- the strategy ----------------------------------------------------------------------
    def start(self, loop: ConsumerLoop) -> None:
        self._loop = loop
        self.start_event_loop()

    def poll_request(self) -> tuple[int, int]:
        return (50 if self._tasks else 500), self._loop.settings.max_poll_records

    def submit(self, records: list[Record]) -> None:
        started = time.perf_counter()
        self._start([_Task(p, started) for p in self._loop.decode(records)])

    def poll(self) -> None:
        self._drain()

    def revoke(self, partitions: set[TopicPartition]) -> None:
        self._wind_down(_of(partitions), self.revoke_drain_s)

    def lose(self, partitions: set[TopicPartition]) -> None:
        self._cancel(_of(partitions))

    def shutdown(self) -> None:
        log.info("stopping: interrupting messages in flight", in_flight=len(self._tasks))
        self._wind_down(lambda task: True, self.shutdown_drain_s)
        self._drain()  # messages that finished after the last look: their outcomes still go out

    def close(self) -> None:
        try:
            if self.on_close is not None:
                self.run_in_event_loop(self.on_close(), timeout_s=30)
        finally:
            self._stop_event_loop()

    # -- scheduling ------------------------------------------------------------------------
    def _start(self, tasks: list[_Task], delay_s: float = 0.0) -> None:
        """Hand `tasks` to the event loop in ONE cross-thread call: a wake-up per message
        (run_coroutine_threadsafe) costs a syscall and a GIL hand-over each. Each task gets a
        concurrent future the loop's thread can wait on or cancel."""
        if not tasks:
            return
        started: list[tuple[_Task, concurrent.futures.Future]] = []
        for task in tasks:
            record = task.polled.record
            self._tasks[(record.topic, record.partition, record.offset)] = task
            future: concurrent.futures.Future = concurrent.futures.Future()
            task.future = future
            future.add_done_callback(functools.partial(self._ended, task))
            started.append((task, future))
        # The futures travel with their tasks: `_complete` (loop thread) may drop task.future first.
        self._event_loop.call_soon_threadsafe(self._launch, started, delay_s)

    def _ended(self, task: _Task, future: concurrent.futures.Future) -> None:
        """The future's done callback (any thread): `_drain` completes it on the loop's thread."""
        self._done.put((task, future))

    def _launch(self, started: list[tuple[_Task, concurrent.futures.Future]], delay_s: float) -> None:
        """On the event-loop thread: one asyncio task per message, its end copied to the task's
        future; cancelling that future (loop thread) cancels the asyncio task."""
        event_loop = self._event_loop
        for task, outcome in started:
            if outcome.cancelled():
                continue
            running = task.running = event_loop.create_task(self._handle_after(task.polled.message, delay_s))
            running.add_done_callback(functools.partial(_settle, outcome))
            outcome.add_done_callback(functools.partial(_cancel_if_cancelled, event_loop, running))

    async def _handle_after(self, message: Incoming, delay_s: float) -> list:
        if delay_s:
            await asyncio.sleep(delay_s)
        return await self.handle(message)

    # -- completions -----------------------------------------------------------------------
    def _drain(self, block_s: float = 0.0) -> None:
        """Finish the messages whose handlers ended (block up to `block_s` for the first one)."""
        deadline = time.monotonic() + block_s
        while True:
            try:
                task, future = self._done.get(timeout=max(0.0, deadline - time.monotonic())) if block_s \
                    else self._done.get_nowait()
            except queue.Empty:
                return
            block_s = 0.0
            self._complete(task, future)

    def _complete(self, task: _Task, future: concurrent.futures.Future) -> None:
        # The future's done callback holds the task, which held the future: a reference cycle per
        # message that only the cyclic GC would free. Broken here, reference counting frees the
        # message and its outputs as soon as it is done.
        task.future = None
        polled = task.polled
        record = polled.record
        key = (record.topic, record.partition, record.offset)
        if self._tasks.get(key) is task:
            del self._tasks[key]
        elif not task.cancelled:
            return  # superseded by a retry
        if future.cancelled():
            return  # not done: its partition's next owner replays it
        loop = self._loop
        if task.cancelled:
            # Its partition was revoked or lost after the handler had finished (an SP-API call made):
            # publish the outcome anyway, or it is lost; the new owner's replay only duplicates it.
            if future.exception() is None:
                try:
                    loop.produce(loop.encode(future.result()))
                except Exception as encode_exc:
                    log.error("cannot encode output", error=repr(encode_exc))
            return
        exc = future.exception()
        if isinstance(exc, RetryableError) and not loop.stop.is_set():
            log.warning("handler asked for a retry", topic=polled.message.topic, partition=record.partition,
                        offset=record.offset, error=str(exc), pause_s=self.retry_pause_s)
            self._start([_Task(polled, task.started)], self.retry_pause_s)
            return
        if exc is None:
            try:
                outputs = loop.encode(future.result())
            except Exception as encode_exc:  # an event the codec cannot encode is a handler bug
                exc = encode_exc
            else:
                loop.finish([polled], outputs, [], task.started)
                return
        loop.finish([], [], [loop.handler_failed(polled, exc)], task.started)

    # -- winding down ----------------------------------------------------------------------
    def _wind_down(self, selects: Callable[[_Task], bool], seconds: float) -> None:
        """Interrupt the selected handlers, give them up to `seconds` to end (one finishing a call
        already made ends with its outputs), then drop the ones still running."""
        chosen = [t for t in self._tasks.values() if selects(t)]
        if chosen:
            self._event_loop.call_soon_threadsafe(_interrupt, chosen)
        deadline = time.monotonic() + seconds
        while any(selects(t) for t in self._tasks.values()) and time.monotonic() < deadline:
            self._drain(block_s=min(0.1, max(0.0, deadline - time.monotonic())))
        self._cancel(selects)

    def _cancel(self, selects: Callable[[_Task], bool]) -> None:
        for key, task in list(self._tasks.items()):
            if selects(task):
                task.cancelled = True
                if task.future is not None:
                    task.future.cancel()
                del self._tasks[key]


def _of(partitions: set[TopicPartition]) -> Callable[[_Task], bool]:
    return lambda task: (task.polled.record.topic, task.polled.record.partition) in partitions


def _interrupt(tasks: list[_Task]) -> None:
    """On the event-loop thread (after the `_launch` that started them): cancel the handlers'
    tasks. Unlike cancelling their futures, this lets a handler end with a result."""
    for task in tasks:
        running = task.running
        if running is not None:
            running.cancel()


def _cancel_if_cancelled(event_loop: asyncio.AbstractEventLoop, running: asyncio.Task,
                         outcome: concurrent.futures.Future) -> None:
    """Done callback of `outcome`: when the loop's thread cancelled it, cancel the asyncio task too."""
    if outcome.cancelled() and not running.done():
        event_loop.call_soon_threadsafe(running.cancel)


def _settle(outcome: concurrent.futures.Future, running: asyncio.Task) -> None:
    """Copy a finished asyncio task's end onto the future the loop's thread reads."""
    try:
        if running.cancelled():
            outcome.cancel()
        elif running.exception() is not None:
            outcome.set_exception(running.exception())
        else:
            outcome.set_result(running.result())
    except concurrent.futures.InvalidStateError:
        pass  # cancelled by the loop's thread meanwhile


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # uvicorn[standard] brings it; plain asyncio works too
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
