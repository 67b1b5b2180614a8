"""The batch strategy of the consumer loop (validator, recorder): `handle_batch(list[Incoming]) ->
list[Outgoing]` over what a few polls brought, in the loop's thread, then a commit.

A poll that brings less than a full batch is topped up for KAFKA_BATCH_LINGER_MS: a trickle of
events otherwise makes batches of a few events, each paying a whole batch's fixed costs (a flush,
an offset commit, a database transaction). A full batch goes at once. Messages held from a
partition revoked meanwhile are dropped: its next owner (or this worker, re-assigned) reads them
again from the committed offset.

Handlers are plain functions over decoded events and must be idempotent (a crash between flush
and commit replays the batch). A handler that raises is run again message by message and the
messages that raise are dead-lettered; RetryableError (the database is down) retries the whole
batch after a pause instead, and Reposition (the store holding the positions failed) drops it and
has the loop seek every partition to the positions the store gives once it answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from .bus import Record, TopicPartition
from .consumer_loop import ConsumerLoop, Incoming, Outgoing, Polled, Reposition, RetryableError

log = structlog.get_logger()

BatchHandler = Callable[[list[Incoming]], list[Outgoing]]


class BatchStrategy:
    commit_interval_s = 0.0  # after every batch
    max_in_flight_per_partition = None  # a batch is done before the next poll

    def __init__(self, handle_batch: BatchHandler, *, retry_pause_s: float = 1.0):
        self.handle_batch = handle_batch
        self.retry_pause_s = retry_pause_s
        self._held: list[Record] = []
        self._deadline = 0.0
        self._loop: ConsumerLoop  # set by start(), which the loop calls before anything else

    def start(self, loop: ConsumerLoop) -> None:
        self._loop = loop
        self._size = loop.settings.max_poll_records
        self._linger_s = loop.settings.batch_linger_ms / 1000

    def poll_request(self) -> tuple[int, int]:
        if not self._held:
            return 500, self._size
        return max(0, int((self._deadline - time.monotonic()) * 1000)), self._size - len(self._held)

    def submit(self, records: list[Record]) -> None:
        if not self._held:
            self._deadline = time.monotonic() + self._linger_s
        self._held.extend(records)

    def poll(self) -> None:
        held = self._held
        if held and (len(held) >= self._size or time.monotonic() >= self._deadline or self._loop.stop.is_set()):
            self._held = []
            self._handle(held)

    def revoke(self, partitions: set[TopicPartition]) -> None:
        self._held = [r for r in self._held if (r.topic, r.partition) not in partitions]

    lose = revoke

    def shutdown(self) -> None:
        self.poll()  # the stop ends the linger: the batch in hand is handled and committed

    def close(self) -> None:
        pass

    def _handle(self, records: list[Record]) -> None:
        loop = self._loop
        started = time.perf_counter()
        batch = loop.decode(records)
        if not batch:
            return
        while True:
            try:
                handled, outputs, failed = self._outcomes(batch)
                break
            except Reposition as exc:
                # Nothing of the batch is finished: it is read again from the positions found.
                loop.reposition(str(exc))
                return
            except RetryableError as exc:
                if loop.stop.is_set():
                    # Nothing committed: the batch is replayed by whoever owns the partitions next.
                    raise
                log.warning("batch failed, retrying", error=str(exc), pause_s=self.retry_pause_s)
                loop.stop.wait(self.retry_pause_s)
        loop.finish(handled, outputs, failed, started)

    def _outcomes(self, batch: list[Polled]) -> tuple[list[Polled], list[tuple], list[tuple[Record, str, str]]]:
        """Outputs encoded and ready to send; on a handler bug, isolate the failing messages."""
        encode = self._loop.encode
        try:
            return batch, encode(self.handle_batch([p.message for p in batch])), []
        except RetryableError:
            raise
        except Exception:
            log.exception("batch handler failed; retrying message by message")
        handled, outputs, failed = [], [], []
        for polled in batch:
            try:
                outputs.extend(encode(self.handle_batch([polled.message])))
            except RetryableError:
                raise
            except Exception as exc:
                failed.append(self._loop.handler_failed(polled, exc))
            else:
                handled.append(polled)
        return handled, outputs, failed
