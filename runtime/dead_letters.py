"""Dead letters: the original bytes of a message a worker gave up on, with the reason.

A worker never dies on one bad message, but a flood of them (a bad deploy, a wrong topic) must
stop it loudly instead of draining a topic into the dead-letter queue: DeadLetterBudget caps them.
"""

from __future__ import annotations

import time
from collections import deque

from .bus import Record
from .events import new_header


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
