"""The outputs of the ListingReady events this process answered lately, by event id.

A message comes back after a rebalance or a broker outage when its outcome was produced but its
offset not yet committed. It is the same event (same event id), so calling Amazon for it again
would be a second submission: the accepted-hash table skips only ACCEPTED listings, and a
rejected one would be sent again, spending the seller's quota on an answer we already have. Its
recorded outputs are published again instead, with the same event ids, which the recorder ignores
as duplicates. A deliberate resend (`catalog-sync retry`) is a new event and goes to Amazon.

Bounded: replays reach back to the last commit (about a second, longer while the broker is away),
so the most recent `capacity` answers cover them; older ones are forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict

DEFAULT_CAPACITY = 20_000  # answers remembered; what that costs in memory: docs/performance.md


class AnsweredEvents:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = max(1, capacity)
        self._outputs: OrderedDict[str, list] = OrderedDict()

    def get(self, event_id: str | None) -> list | None:
        if event_id is None:
            return None
        return self._outputs.get(event_id)

    def put(self, event_id: str | None, outputs: list) -> None:
        if event_id is None:
            return
        self._outputs[event_id] = outputs
        self._outputs.move_to_end(event_id)
        while len(self._outputs) > self.capacity:
            self._outputs.popitem(last=False)

    def __len__(self) -> int:
        return len(self._outputs)
