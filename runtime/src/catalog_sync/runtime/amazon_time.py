"""Amazon's time, optionally faster than the wall clock: `scale` Amazon seconds per real second.

The emulator runs its usage plans and feed processing on it, and a submitter pointed at such an
emulator runs its rate gates, retry delays and feed polling on the same scale, so a test or a
benchmark runs an hour of Amazon's quota in seconds with the same ratios. Production: scale 1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class ScaledClock:
    """A monotonic clock running `scale` times as fast as `source`; changing the scale keeps it
    continuous."""

    def __init__(self, scale: float = 1.0, source: Callable[[], float] = time.monotonic) -> None:
        if scale <= 0:
            raise ValueError("the time scale must be > 0")
        self._source = source
        self._scale = scale
        self._real0 = source()
        self._scaled0 = self._real0

    @property
    def scale(self) -> float:
        return self._scale

    def set_scale(self, scale: float) -> None:
        if scale <= 0:
            raise ValueError("the time scale must be > 0")
        self._scaled0, self._real0 = self.now(), self._source()
        self._scale = scale

    def now(self) -> float:
        return self._scaled0 + (self._source() - self._real0) * self._scale

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of Amazon time."""
        await asyncio.sleep(max(0.0, seconds) / self._scale)
