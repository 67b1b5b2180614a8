"""The cyclic garbage collector's settings for long-running workers.

CPython's defaults suit short scripts. A worker holds thousands of messages in flight plus large
long-lived structures (compiled schemas, codecs), and every collection walks them: freezing what
start-up built takes it out of every collection, and a larger young threshold makes collections
rarer but no less complete (reference counting still frees everything without cycles at once).
What fills the young generation in a busy worker is long-lived growth, not garbage. The figures
behind these thresholds: docs/performance.md, "Garbage collection".
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 200_000  # allocations between young collections (CPython: 700)
MIDDLE_THRESHOLD = 20     # young collections per middle one (CPython: 10)
OLD_THRESHOLD = 100       # middle collections per full one (CPython: 10)


def apply_worker_gc_policy() -> None:
    """Call once start-up is done (imports, schemas, clients built), before the message loop."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
