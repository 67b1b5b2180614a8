"""Dead letters: the original bytes of a message a worker gave up on, with the reason.

A worker never dies on one bad message, but a flood of them (a bad deploy, a wrong topic) must
stop it loudly instead of draining a topic into the dead-letter queue: DeadLetterBudget caps them.
"""

from __future__ import annotations

import time
from collections import deque

import structlog

from .bus import Record
from .codec import AvroCodec
from .events import new_header
from .metrics import PipelineMetrics

log = structlog.get_logger()


class DeadLetterFlood(RuntimeError):
    """More dead letters in one minute than DEAD_LETTERS_PER_MINUTE allows."""


def dead_letter_event(service: str, record: Record, reason: str, error: str) -> dict:
    return {
        **new_header(None),
        "service": service,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": record.key,
        "value": record.value,
        "reason": reason,
        "error": error[:2000],
    }


class DeadLetterBudget:
    def __init__(self, per_minute: int, clock=time.monotonic):
        self._per_minute = per_minute
        self._clock = clock
        self._times: deque[float] = deque()

    def spend(self, count: int = 1) -> None:
        now = self._clock()
        while self._times and now - self._times[0] > 60:
            self._times.popleft()
        self._times.extend([now] * count)
        if len(self._times) > self._per_minute:
            raise DeadLetterFlood(
                f"{len(self._times)} dead letters within a minute (limit {self._per_minute}); "
                "stopping so a bad deploy or wrong input does not drain the topic"
            )


class DeadLetters:
    """What the worker loop does with messages it gives up on: spend the budget, log each one,
    count it, and encode its DeadLetter record for `<service>.dlq` (the loop sends them)."""

    def __init__(self, service: str, topic: str, codec: AvroCodec, metrics: PipelineMetrics, per_minute: int):
        self.service = service
        self.topic = topic
        self._codec = codec
        self._metrics = metrics
        self._budget = DeadLetterBudget(per_minute)

    def records(self, dead: list[tuple[Record, str, str]]) -> list[tuple[str, bytes | None, bytes]]:
        """(topic, key, value) to produce for each (record, reason, detail); DeadLetterFlood when
        the budget is spent."""
        if not dead:
            return []
        self._budget.spend(len(dead))
        out = []
        for record, reason, detail in dead:
            log.warning("dead letter", topic=record.topic, partition=record.partition, offset=record.offset,
                        reason=reason, error=detail[:300])
            value = self._codec.encode("DeadLetter", dead_letter_event(self.service, record, reason, detail))
            out.append((self.topic, record.key, value))
            self._metrics.dead_letters.labels(self.service, record.topic, reason).inc()
            self._metrics.processed.labels(self.service, record.topic, "dead_letter").inc()
        return out
