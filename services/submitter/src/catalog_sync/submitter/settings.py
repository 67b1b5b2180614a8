"""Submitter configuration from the environment (interfaces.md §4 plus the submitter's own knobs).

| variable | meaning | default |
|---|---|---|
| SPAPI_ENDPOINT / SPAPI_SANDBOX_ENDPOINT | base URL override for production / sandbox (every region) | per region |
| LWA_TOKEN_URL | Login with Amazon token URL | https://api.amazon.com/auth/o2/token |
| LWA_CLIENT_ID, LWA_CLIENT_SECRET, LWA_REFRESH_TOKEN, SELLER_ID | one account | none |
| SPAPI_ACCOUNTS_FILE | many accounts (format in catalog_sync.runtime.spapi_accounts) | none |
| SPAPI_CONNECT_TIMEOUT_S / SPAPI_READ_TIMEOUT_S | HTTP timeouts | 5 / 30 |
| SPAPI_WRITE_TIMEOUT_S / SPAPI_POOL_TIMEOUT_S | sending a request / waiting for a free connection | 10 / 60 |
| SPAPI_MAX_CONNECTIONS | HTTP connections per SP-API host | 256 |
| SPAPI_MAX_ATTEMPTS | attempts per item (first try included) | 6 |
| SPAPI_MAX_RETRY_SECONDS | time budget per item from its first attempt | 120 |
| SUBMITTER_MAX_IN_FLIGHT_PER_PARTITION | backlog per partition before it is paused | 2000 |
| SUBMITTER_SHUTDOWN_DRAIN_S | on SIGTERM, time to wait for answers of calls already sent | 20 |
| SUBMITTER_UNCHANGED_CHECK | `kafka` (compacted topic) or `off` | kafka |
| SUBMITTER_RECONCILE | `on`: look again after ACCEPTED until live, error or the time limit (reconciliation.py); `off` | on |
| RECONCILE_FIRST_LOOK_S | first getListingsItem this long after the acceptance | 5 |
| RECONCILE_MAX_INTERVAL_S | back-off ceiling between looks | 60 |
| RECONCILE_TIME_LIMIT_S | after this long from the acceptance the item stays "accepted, awaiting Amazon" | 900 |
| SUBMITTER_BULK_LANE | `on`: a seller's backlog above the threshold goes as JSON_LISTINGS_FEEDs (feeds.py); `off`: every item by itself | on |
| SUBMITTER_FEED_THRESHOLD | backlog of one seller (items) above which its items go by feed | 300 (put plan x createFeed interval) |
| SUBMITTER_FEED_MAX_MESSAGES / SUBMITTER_FEED_MAX_BYTES | per feed document | 25000 / 10000000 |
| SUBMITTER_FEED_LINGER_S | a feed batch closes after this long without a new item | 2 |
| SUBMITTER_FEED_POLL_S | between getFeed calls of one feed | 30 |
| SUBMITTER_FEED_HANDOVER_S | on a revoke, the longest wait for a createFeed on its way to have its feed id journaled | 3 |
| SPAPI_TIME_SCALE | Amazon seconds per real second (only against an emulator run with the same --time-scale) | 1 |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from catalog_sync.runtime.config import ConfigError, RuntimeSettings, env_choice, env_float, env_int, env_str
from catalog_sync.submitter.accounts import Accounts, AccountsError
from catalog_sync.submitter.classification import RetryPolicy
from catalog_sync.submitter.endpoints import LWA_TOKEN_URL, Endpoints
from catalog_sync.submitter.feeds import MAX_DOCUMENT_BYTES, MAX_MESSAGES, BulkSettings, default_threshold
from catalog_sync.submitter.reconciliation import ReconcilePolicy
from catalog_sync.submitter.spapi_client import ClientSettings


@dataclass(frozen=True)
class SubmitterSettings:
    runtime: RuntimeSettings
    accounts: Accounts
    endpoints: Endpoints
    client: ClientSettings
    policy: RetryPolicy
    max_in_flight_per_partition: int
    shutdown_drain_s: float
    unchanged_check: str
    reconcile: ReconcilePolicy | None = None  # None: SUBMITTER_RECONCILE=off
    bulk: BulkSettings | None = None  # None: the bulk lane is off
    time_scale: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **runtime_overrides) -> SubmitterSettings:
        env = os.environ if env is None else env
        try:
            accounts = Accounts.from_env(env)
        except AccountsError as exc:
            raise ConfigError(str(exc)) from None
        token_url = env_str(env, "LWA_TOKEN_URL", LWA_TOKEN_URL)
        try:
            endpoints = Endpoints(env_str(env, "SPAPI_ENDPOINT"), env_str(env, "SPAPI_SANDBOX_ENDPOINT"), token_url)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        for name in ("SPAPI_ENDPOINT", "SPAPI_SANDBOX_ENDPOINT", "LWA_TOKEN_URL"):
            value = env_str(env, name)
            if value and not value.startswith(("http://", "https://")):
                raise ConfigError(f"{name}={value!r} must be an http(s) URL")
        client = ClientSettings(
            token_url=token_url,
            connect_timeout_s=env_float(env, "SPAPI_CONNECT_TIMEOUT_S", 5.0, minimum=0.1),
            read_timeout_s=env_float(env, "SPAPI_READ_TIMEOUT_S", 30.0, minimum=0.1),
            write_timeout_s=env_float(env, "SPAPI_WRITE_TIMEOUT_S", 10.0, minimum=0.1),
            pool_timeout_s=env_float(env, "SPAPI_POOL_TIMEOUT_S", 60.0, minimum=0.1),
            max_connections=env_int(env, "SPAPI_MAX_CONNECTIONS", 256, minimum=1),
        )
        policy = RetryPolicy(
            max_attempts=env_int(env, "SPAPI_MAX_ATTEMPTS", 6, minimum=1),
            max_elapsed_s=env_float(env, "SPAPI_MAX_RETRY_SECONDS", 120.0, minimum=0.0),
        )
        if env_int(env, "SUBMITTER_FEED_MAX_MESSAGES", MAX_MESSAGES, minimum=1) > MAX_MESSAGES:
            raise ConfigError(f"SUBMITTER_FEED_MAX_MESSAGES must be at most {MAX_MESSAGES} (Amazon's limit per feed)")
        return cls(
            runtime=RuntimeSettings.from_env("submitter", env, **runtime_overrides),
            accounts=accounts,
            endpoints=endpoints,
            client=client,
            policy=policy,
            max_in_flight_per_partition=env_int(env, "SUBMITTER_MAX_IN_FLIGHT_PER_PARTITION", 2000, minimum=1),
            shutdown_drain_s=env_float(env, "SUBMITTER_SHUTDOWN_DRAIN_S", 20.0, minimum=0.0),
            unchanged_check=env_choice(env, "SUBMITTER_UNCHANGED_CHECK", "kafka", ("kafka", "off")),
            reconcile=ReconcilePolicy(
                first_look_s=env_float(env, "RECONCILE_FIRST_LOOK_S", 5.0, minimum=0.0),
                max_interval_s=env_float(env, "RECONCILE_MAX_INTERVAL_S", 60.0, minimum=0.1),
                time_limit_s=env_float(env, "RECONCILE_TIME_LIMIT_S", 900.0, minimum=0.0),
            ) if env_choice(env, "SUBMITTER_RECONCILE", "on", ("on", "off")) == "on" else None,
            bulk=BulkSettings(
                threshold=env_int(env, "SUBMITTER_FEED_THRESHOLD", default_threshold(), minimum=1),
                max_messages=env_int(env, "SUBMITTER_FEED_MAX_MESSAGES", MAX_MESSAGES, minimum=1),
                max_bytes=env_int(env, "SUBMITTER_FEED_MAX_BYTES", MAX_DOCUMENT_BYTES, minimum=1000),
                linger_s=env_float(env, "SUBMITTER_FEED_LINGER_S", 2.0, minimum=0.0),
                poll_interval_s=env_float(env, "SUBMITTER_FEED_POLL_S", 30.0, minimum=0.5),
                handover_wait_s=env_float(env, "SUBMITTER_FEED_HANDOVER_S", 3.0, minimum=0.0),
            ) if env_choice(env, "SUBMITTER_BULK_LANE", "on", ("on", "off")) == "on" else None,
            time_scale=env_float(env, "SPAPI_TIME_SCALE", 1.0, minimum=0.001),
        )

    def describe(self) -> dict:
        """The effective configuration, safe to log: no secrets (accounts are counted, not shown)."""
        return {
            "kafka_bootstrap_servers": self.runtime.kafka_bootstrap_servers,
            "topic_prefix": self.runtime.topic_prefix,
            "group_id": self.runtime.group_id,
            "accounts": len(self.accounts),
            "default_seller": self.accounts.default_seller,
            "spapi_endpoint": self.endpoints.production_override or "per region",
            "spapi_sandbox_endpoint": self.endpoints.sandbox_override or "per region",
            "lwa_token_url": self.endpoints.token_url,
            "max_connections": self.client.max_connections,
            "timeouts_s": {"connect": self.client.connect_timeout_s, "read": self.client.read_timeout_s,
                           "write": self.client.write_timeout_s, "pool": self.client.pool_timeout_s},
            "max_attempts": self.policy.max_attempts,
            "max_retry_seconds": self.policy.max_elapsed_s,
            "max_in_flight_per_partition": self.max_in_flight_per_partition,
            "unchanged_check": self.unchanged_check,
            "reconcile": ({"first_look_s": self.reconcile.first_look_s, "max_interval_s": self.reconcile.max_interval_s,
                           "time_limit_s": self.reconcile.time_limit_s} if self.reconcile else "off"),
            "bulk_lane": None if self.bulk is None else {
                "threshold": self.bulk.threshold, "max_messages": self.bulk.max_messages,
                "max_bytes": self.bulk.max_bytes, "linger_s": self.bulk.linger_s,
                "poll_interval_s": self.bulk.poll_interval_s, "handover_wait_s": self.bulk.handover_wait_s},
            "time_scale": self.time_scale,
            "metrics_port": self.runtime.metrics_port,
        }
