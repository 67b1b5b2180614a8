"""The cyclic garbage collector's settings for long-running workers.

CPython's defaults (collect the young generation every 700 net allocations) suit short scripts.
A worker holds thousands of messages in flight (the submitter: one asyncio task, coroutine and
future each) plus large long-lived structures (compiled product type schemas, codecs), and every
collection of an older generation walks all of them: measured on the submitter at 1,000 calls/s,
28 % of its CPU went to `gc_collect_main`. Freezing what start-up built moves it out of every
future collection; a larger first threshold makes collections rarer but no less complete
(reference counting still frees everything without cycles at once).

Each young collection walks every young object still alive, and in a busy submitter that is the
work in flight (84,000-96,000 objects: tasks, coroutines, messages), ~0.1 s per pass. With the
per-message reference cycle gone (concurrent_strategy._complete), what fills the young generation is
long-lived growth (answer memory, per-seller state), not garbage: at 50,000 a 30,000-item
pipeline run made 7-11 passes per submitter (0.82-1.30 s, three runs), at 200,000 one (0.14 and
0.23 s, one run).
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
