"""Which SP-API host a call goes to: marketplace -> region -> production or sandbox base URL (the
sync mode's route in catalog_sync.runtime.sync_modes chooses which), with the operator's overrides applied;
and, back from a base URL, which of the two hosts it is (the HTTP client's mode guard asks)."""

from __future__ import annotations

from dataclasses import dataclass

from catalog_sync.runtime.marketplaces import (
    LWA_TOKEN_URL,
    PRODUCTION_HOSTS,
    SANDBOX_HOSTS,
    UnknownMarketplace,
    region_of,
)
from catalog_sync.runtime.sync_modes import PRODUCTION, SANDBOX

__all__ = ["LWA_TOKEN_URL", "Endpoints", "UnknownMarketplace"]


@dataclass(frozen=True)
class Endpoints:
    """SPAPI_ENDPOINT / SPAPI_SANDBOX_ENDPOINT override every region's host (the emulator, a proxy)."""

    production_override: str | None = None
    sandbox_override: str | None = None
    token_url: str = LWA_TOKEN_URL

    def __post_init__(self) -> None:
        if self.production_override and self.sandbox_override and \
                self.production_override.rstrip("/") == self.sandbox_override.rstrip("/"):
            raise ValueError("SPAPI_SANDBOX_ENDPOINT equals SPAPI_ENDPOINT: test runs would reach the production "
                             "host; point the sandbox at its own URL (the emulator serves it under /sandbox)")

    def base_url(self, marketplace_id: str, *, sandbox: bool) -> str:
        override = self.sandbox_override if sandbox else self.production_override
        if override:
            return override.rstrip("/")
        return (SANDBOX_HOSTS if sandbox else PRODUCTION_HOSTS)[region_of(marketplace_id)]

    def host_kind(self, base_url: str) -> str | None:
        """PRODUCTION or SANDBOX for a base URL this configuration sends to; None for any other."""
        base_url = base_url.rstrip("/")
        if self.sandbox_override and base_url == self.sandbox_override.rstrip("/"):
            return SANDBOX
        if self.production_override and base_url == self.production_override.rstrip("/"):
            return PRODUCTION
        if base_url in SANDBOX_HOSTS.values():
            return SANDBOX
        if base_url in PRODUCTION_HOSTS.values():
            return PRODUCTION
        return None
