"""Fakes for the submitter's domain: a clock tests advance, and a scripted SP-API transport."""

from __future__ import annotations

import asyncio
import contextlib

from catalog_sync.submitter.classification import Answer
from catalog_sync.submitter.submission import LoginFailed


class FakeClock:
    """Time only moves when a coroutine sleeps on it: sleeping advances it at once."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


class ScriptedTransport:
    """Answers calls from a script (one Answer, or LoginFailed to raise, per call); then 200 ACCEPTED."""

    def __init__(self, clock: FakeClock, script=(), latency_s: float = 0.05) -> None:
        self.clock = clock
        self.script = list(script)
        self.latency_s = latency_s
        self.calls: list[tuple[str, float, int]] = []  # (sku path, time sent, token generation)
        self.generation = 1
        self.refreshes = 0
        self.hold_login: asyncio.Event | None = None  # set by a test: prepare waits for it
        self.hold_answer: asyncio.Event | None = None  # set by a test: a sent call waits for it

    async def prepare(self, account):
        if self.hold_login is not None:
            await self.hold_login.wait()
        if self.script and isinstance(self.script[0], Exception):
            raise self.script.pop(0)

    def connection(self, base_url):
        return contextlib.nullcontext(base_url)

    async def send(self, connection, account, base_url, call):
        self.calls.append((call.path, self.clock.now, self.generation))
        self.clock.now += self.latency_s
        await asyncio.sleep(0)
        if self.hold_answer is not None:
            await self.hold_answer.wait()
        if self.script:
            answer = self.script.pop(0)
            return Answer(answer.status, answer.request_id or f"req-{len(self.calls)}", answer.body,
                          answer.rate_limit, answer.failure, answer.detail, self.generation)
        body = {"sku": call.path.rsplit("/", 1)[1], "status": "VALID" if call.mode == "preview" else "ACCEPTED",
                "submissionId": f"sub-{len(self.calls)}", "issues": []}
        return Answer(200, f"req-{len(self.calls)}", body, "5.0", token_generation=self.generation)

    async def refresh_token(self, account, generation):
        if generation == self.generation:
            self.generation += 1
            self.refreshes += 1


def error(status: int, code: str, message: str = "msg") -> Answer:
    return Answer(status, body={"errors": [{"code": code, "message": message}]})


def login_refused() -> LoginFailed:
    return LoginFailed(400, "invalid_grant", "The request has an invalid grant parameter", retryable=False)
