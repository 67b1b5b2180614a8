"""Code the tests (and the benchmarks) share; never shipped in the wheel.

- `requirements`: what a test needs and how its absence is handled (`require`, CATALOG_SYNC_STRICT, PostgreSQL).
- `broker`: the test broker (env → testcontainers → embedded), unique topic prefixes, reading and writing topics.
- `background`: waiting on a condition, serving an ASGI app, running a worker loop in a thread.
- `chaos`: fault injection (a Kafka-aware proxy that cuts connections, kill -9 and restart of workers).
- `sample_events`: realistic event dicts of sync runs, for the recorder's tests and benchmark.
"""
