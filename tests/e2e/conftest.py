"""The whole pipeline as separate processes on the session's broker, one stack per test."""

import pytest

from catalog_sync.demo import DemoStack
from catalog_sync.runtime.processes import free_port


@pytest.fixture
def stack(tmp_path, kafka_env):
    stack = DemoStack(tmp_path / "stack", api_port=free_port(), kafka_env=kafka_env)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
