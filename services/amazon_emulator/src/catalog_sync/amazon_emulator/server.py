"""HTTP face of the emulator: a bare ASGI app on uvicorn (httptools + uvloop), plus helpers that
start it on a free port in a thread (tests: share the Emulator object) or in a subprocess
(benchmarks: its own core; read the log over HTTP).

A bare ASGI callable rather than a framework: routing is three prefixes, and skipping a router
keeps the emulator well above the 1,000 req/s the benchmarks drive through it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

import httpx
import orjson

from catalog_sync.amazon_emulator.emulator import SANDBOX_PREFIX, Emulator, EmulatorConfig
from catalog_sync.runtime.gc_policy import apply_worker_gc_policy

CONTROL_PREFIX = "/_emulator/"


class EmulatorApp:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":  # lifespan is off; websockets are not part of SP-API
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        raw_path = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1")
        query = scope["query_string"].decode("latin-1")
        if path.startswith(CONTROL_PREFIX):
            status, payload = self._control(scope["method"], path[len(CONTROL_PREFIX):], query, body)
            await _send(send, status, [(b"content-type", b"application/json")], orjson.dumps(payload))
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        response = self.emulator.handle(scope["method"], path, query, headers, body)
        if response.delay_s > 0:
            await asyncio.sleep(response.delay_s)
        await _send(send, response.status, [(k.encode(), v.encode()) for k, v in response.headers], response.body)

    def _control(self, method: str, name: str, query: str, body: bytes) -> tuple[int, dict]:
        emulator = self.emulator
        try:
            args = orjson.loads(body) if body else {}
            if method == "GET" and name == "requests":
                since = int(parse_qs(query).get("since", ["0"])[0])
                return 200, {"requests": emulator.requests(since)}
            if method == "GET" and name == "health":
                return 200, {"status": "ok"}
            if method == "POST" and name == "reset":
                emulator.reset()
                return 200, {"status": "ok"}
            if method == "POST" and name == "script":
                emulator.script(**args)
                return 200, {"status": "ok"}
            if method == "POST" and name == "after-acceptance":
                emulator.after_acceptance(**args)
                return 200, {"status": "ok"}
            if method == "POST" and name == "config":
                emulator.configure(**args)
                return 200, {"status": "ok"}
            if method == "POST" and name == "expire-tokens":
                emulator.expire_tokens()
                return 200, {"status": "ok"}
        except (TypeError, ValueError) as exc:
            return 400, {"error": str(exc)}
        return 404, {"error": f"no control endpoint {method} /_emulator/{name}"}


async def _send(send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def make_server(emulator: Emulator, *, log_level: str = "warning"):
    import uvicorn

    config = uvicorn.Config(EmulatorApp(emulator), loop="uvloop", http="httptools", lifespan="off",
                            access_log=False, log_level=log_level, backlog=2048, timeout_keep_alive=30,
                            proxy_headers=False)  # nothing in front of it: no per-request header rewrite
    return uvicorn.Server(config)


def serve(emulator: Emulator, sock: socket.socket, *, log_level: str = "warning") -> None:
    """Serve until SIGINT/SIGTERM (the command line), with the workers' collector settings: the
    emulator keeps every accepted listing (one tracked object each, attributes serialized), and
    the collector walks what it keeps."""
    apply_worker_gc_policy()
    emulator.start_processing()
    try:
        make_server(emulator, log_level=log_level).run(sockets=[sock])
    finally:
        emulator.stop_processing()


@dataclass
class RunningEmulator:
    """A started emulator. `url` is the production base URL, `sandbox_url` the sandbox one
    (the same server; the log records which one was called)."""

    url: str
    emulator: Emulator | None  # None when it runs in a subprocess: use the HTTP control API
    _stop: Callable[[], None]

    @property
    def sandbox_url(self) -> str:
        return self.url + SANDBOX_PREFIX

    @property
    def token_url(self) -> str:
        return self.url + "/auth/o2/token"

    def requests(self, since: int = 0) -> list[dict]:
        if self.emulator is not None:
            return self.emulator.requests(since)
        answer = httpx.get(f"{self.url}/_emulator/requests", params={"since": since}, timeout=60)
        answer.raise_for_status()
        return answer.json()["requests"]

    def control(self, name: str, **args) -> None:
        """POST /_emulator/<name> (reset, script, config, expire-tokens), in any mode."""
        httpx.post(f"{self.url}/_emulator/{name}", json=args, timeout=30).raise_for_status()

    def stop(self) -> None:
        self._stop()

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_in_thread(config: EmulatorConfig | None = None, *, host: str = "127.0.0.1") -> RunningEmulator:
    """Start on a free port in a daemon thread; returns once it accepts connections."""
    emulator = Emulator(config)
    emulator.start_processing()
    sock = bind(host, 0)
    server = make_server(emulator)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="amazon-emulator", daemon=True)
    thread.start()
    url = f"http://{host}:{sock.getsockname()[1]}"
    _wait_ready(url, lambda: thread.is_alive())

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        emulator.stop_processing()

    return RunningEmulator(url, emulator, stop)


def start_in_subprocess(args: list[str] | None = None, *, host: str = "127.0.0.1") -> RunningEmulator:
    """Start `amazon-emulator` in a child process on a free port (its own interpreter and core).
    `args` are extra command-line flags, e.g. ["--unthrottled"]."""
    sock = bind(host, 0)
    port = sock.getsockname()[1]
    command = [sys.executable, "-m", "catalog_sync.amazon_emulator.entry", "--host", host, "--fd",
               str(sock.fileno()), *(args or [])]
    process = subprocess.Popen(command, pass_fds=(sock.fileno(),), stdin=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    sock.close()  # the child owns it now
    url = f"http://{host}:{port}"
    try:
        _wait_ready(url, lambda: process.poll() is None)
    except BaseException:
        process.kill()
        process.wait()
        raise

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    return RunningEmulator(url, None, stop)


def _wait_ready(url: str, alive, timeout: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the Amazon emulator exited during start-up")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/_emulator/health", timeout=1).status_code == 200:
                return
        threading.Event().wait(0.02)  # polling a socket that is not yet served: nothing to wait on
    raise RuntimeError(f"the Amazon emulator did not answer at {url} within {timeout:.0f} s")
