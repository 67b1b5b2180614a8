"""Configuration from the environment (interfaces.md §4): frozen dataclasses, clear errors, masked printing.

Every service builds its own settings with the `env_*` readers below, so a bad value fails the
same way everywhere: one ConfigError naming the variable, the value and what was expected.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, overload

DEFAULT_METRICS_PORTS = {"validator": 9101, "submitter": 9102, "recorder": 9103}
_SECRET_NAME = re.compile(r"secret|token|password|credential", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@]+):[^@/]+@", re.IGNORECASE)


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@overload
def env_str(env: Mapping[str, str], name: str, default: str, *, required: bool = False) -> str: ...
@overload
def env_str(env: Mapping[str, str], name: str, default: None = None, *, required: Literal[True]) -> str: ...
@overload
def env_str(env: Mapping[str, str], name: str, default: None = None, *, required: bool = False) -> str | None: ...
def env_str(env: Mapping[str, str], name: str, default: str | None = None, *, required: bool = False) -> str | None:
    value = env.get(name, "").strip()
    if value:
        return value
    if required:
        raise ConfigError(f"{name} is required but not set")
    return default


def env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int | None = None) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


def env_float(env: Mapping[str, str], name: str, default: float, *, minimum: float | None = None) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


def env_choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, "").strip() or default
    if value not in choices:
        raise ConfigError(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


def parse_api_version(raw: str | None) -> tuple[int, ...] | None:
    """'2.3' -> (2, 3); empty -> None (negotiate with the broker)."""
    if not raw:
        return None
    if not re.fullmatch(r"\d+(\.\d+){1,2}", raw.strip()):
        raise ConfigError(f"KAFKA_API_VERSION={raw!r} is not a version like 2.3")
    return tuple(int(part) for part in raw.strip().split("."))


def _compression(env: Mapping[str, str]) -> str | None:
    value = env_choice(env, "KAFKA_COMPRESSION_TYPE", "lz4", ("none", "gzip", "snappy", "lz4", "zstd"))
    return None if value == "none" else value


@dataclass(frozen=True)
class RuntimeSettings:
    """What every worker needs: Kafka, topic naming, metrics, logs and dead-letter policy."""

    service: str
    kafka_bootstrap_servers: str = "localhost:9092"
    kafka_api_version: tuple[int, ...] | None = None
    topic_prefix: str = ""
    group_id: str = ""
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    max_poll_interval_ms: int = 300_000
    max_poll_records: int = 2_000
    batch_linger_ms: int = 100  # a batch worker tops up a small poll for this long (0: never)
    # Attribute JSON compresses well: less broker disk and network, and more history kept by
    # size-capped logs (the embedded broker keeps ~5 MB per partition).
    kafka_compression: str | None = "lz4"
    metrics_port: int | None = None
    metrics_host: str = "0.0.0.0"
    dead_letters_per_minute: int = 1_000
    log_format: str = "auto"
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None, **overrides) -> RuntimeSettings:
        env = os.environ if env is None else env
        prefix = env_str(env, "TOPIC_PREFIX", "") or ""
        metrics_raw = env.get("METRICS_PORT", "").strip().lower()
        if metrics_raw in ("off", "none", "-"):
            metrics_port = None
        else:
            metrics_port = env_int(env, "METRICS_PORT", DEFAULT_METRICS_PORTS.get(service, 0), minimum=0)
        settings = cls(
            service=service,
            kafka_bootstrap_servers=env_str(env, "KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"),
            kafka_api_version=parse_api_version(env_str(env, "KAFKA_API_VERSION")),
            topic_prefix=prefix,
            group_id=env_str(env, "KAFKA_GROUP_ID", f"{prefix}{service}"),
            session_timeout_ms=env_int(env, "KAFKA_SESSION_TIMEOUT_MS", 10_000, minimum=1_000),
            heartbeat_interval_ms=env_int(env, "KAFKA_HEARTBEAT_INTERVAL_MS", 3_000, minimum=100),
            max_poll_interval_ms=env_int(env, "KAFKA_MAX_POLL_INTERVAL_MS", 300_000, minimum=1_000),
            max_poll_records=env_int(env, "KAFKA_MAX_POLL_RECORDS", 2_000, minimum=1),
            batch_linger_ms=env_int(env, "KAFKA_BATCH_LINGER_MS", 100, minimum=0),
            kafka_compression=_compression(env),
            metrics_port=metrics_port,
            metrics_host=env_str(env, "METRICS_HOST", "0.0.0.0"),
            dead_letters_per_minute=env_int(env, "DEAD_LETTERS_PER_MINUTE", 1_000, minimum=1),
            log_format=env_choice(env, "LOG_FORMAT", "auto", ("auto", "json", "console")),
            log_level=env_choice(env, "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
        )
        settings = dataclasses.replace(settings, **overrides)
        if settings.heartbeat_interval_ms >= settings.session_timeout_ms:
            raise ConfigError("KAFKA_HEARTBEAT_INTERVAL_MS must be lower than KAFKA_SESSION_TIMEOUT_MS")
        return settings

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}" if self.topic_prefix else name


def mask_secrets(settings: object) -> dict[str, object]:
    """The effective configuration as a dict, safe to log: secret-looking fields and URL passwords masked."""
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        raw = dataclasses.asdict(settings)
    elif isinstance(settings, Mapping):
        raw = dict(settings)
    else:
        raise TypeError(f"mask_secrets takes a dataclass instance or a mapping, not {type(settings).__name__}")
    masked: dict[str, object] = {}
    for name, value in raw.items():
        if value and _SECRET_NAME.search(name):
            masked[name] = "***"
        elif isinstance(value, str):
            masked[name] = _URL_PASSWORD.sub(r"\g<scheme>:***@", value)
        else:
            masked[name] = value
    return masked
