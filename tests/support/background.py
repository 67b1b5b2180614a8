"""Things a test runs beside itself and waits on: a condition, an ASGI app over real HTTP, a
worker loop in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

from catalog_sync.runtime.processes import free_port


def wait_until(condition: Callable[[], object], timeout_s: float = 30.0, interval_s: float = 0.05,
               message: str = "condition") -> object:
    """Poll `condition` until it returns something truthy; fail with `message` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {message}")
        time.sleep(interval_s)


@contextmanager
def serving(app, log_level: str = "warning"):
    """Serve an ASGI app over real HTTP on a free loopback port for the duration; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout_s=15, message="uvicorn to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@contextmanager
def running_in_thread(run: Callable[[], object], stop, name: str = "worker", timeout_s: float = 30.0):
    """Run a worker loop (`run`) in a thread for the block; on exit set `stop` and fail the test
    if the loop does not finish within `timeout_s`."""
    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(timeout_s)
        assert not thread.is_alive(), f"{name} did not stop within {timeout_s} s"
