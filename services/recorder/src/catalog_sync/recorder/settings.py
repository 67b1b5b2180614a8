"""The recorder's and the read API's configuration, from the environment (interfaces.md §4)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

from catalog_sync.runtime.config import ConfigError, env_float, env_int, env_str

from .store import DEFAULT_URL


@dataclass(frozen=True)
class RecorderSettings:
    read_store_url: str = DEFAULT_URL
    read_store_schema: str | None = None  # PostgreSQL schema (READ_STORE_SCHEMA); default search_path
    api_host: str = "127.0.0.1"    # loopback unless the operator opens it up
    api_port: int = 8080
    api_token: str | None = None   # bearer token for /api/*; none = open (loopback default)
    stall_seconds: float = 900.0   # a run with no event for this long while items are pending is interrupted
    default_seller_id: str | None = None  # SELLER_ID: the seller of changes that name none
    retention_days: float = 90.0   # history and runs older than this go (0: keep everything)
    keep_runs: int = 500           # the newest runs kept whatever their age
    prune_every_s: float = 600.0   # how often the recorder prunes in the background

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> RecorderSettings:
        env = os.environ if env is None else env
        url = env_str(env, "READ_STORE_URL", DEFAULT_URL)
        if not url.lower().startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ConfigError(f"READ_STORE_URL={url!r} must start with sqlite:/// or postgresql://")
        settings = cls(
            read_store_url=url,
            read_store_schema=env_str(env, "READ_STORE_SCHEMA"),
            api_host=env_str(env, "API_HOST", "127.0.0.1"),
            api_port=env_int(env, "API_PORT", 8080, minimum=0),
            api_token=env_str(env, "API_TOKEN"),
            stall_seconds=env_float(env, "RECORDER_STALL_SECONDS", 900.0, minimum=1.0),
            default_seller_id=env_str(env, "SELLER_ID"),
            retention_days=env_float(env, "RECORDER_RETENTION_DAYS", 90.0, minimum=0.0),
            keep_runs=env_int(env, "RECORDER_KEEP_RUNS", 500, minimum=1),
            prune_every_s=env_float(env, "RECORDER_PRUNE_EVERY_S", 600.0, minimum=1.0),
        )
        settings = dataclasses.replace(settings, **overrides)
        if settings.api_port > 65535:
            raise ConfigError(f"API_PORT={settings.api_port} is not a TCP port")
        if settings.keep_runs < 1:
            raise ConfigError(f"RECORDER_KEEP_RUNS={settings.keep_runs} must be at least 1")
        if 0 < settings.retention_days < 8:
            raise ConfigError(f"RECORDER_RETENTION_DAYS={settings.retention_days:g} must be 0 (keep everything) or "
                              "at least 8: history is the record of events already applied, and must outlive "
                              "the Kafka topics' retention (7 days by default)")
        return settings

    @property
    def retention(self):
        """The retention policy, or None when everything is kept."""
        from .retention import RetentionPolicy

        return RetentionPolicy(self.retention_days, self.keep_runs) if self.retention_days else None
