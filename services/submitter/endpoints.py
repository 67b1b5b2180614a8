"""Which SP-API host a call goes to: marketplace -> region -> production or sandbox base URL (the
sync mode's route in runtime/sync_modes.py chooses which), with the operator's overrides applied;
and, back from a base URL, which of the two hosts it is (the HTTP client's mode guard asks)."""

from __future__ import annotations

from dataclasses import dataclass

from catalog_sync.runtime.sync_modes import PRODUCTION, SANDBOX

# Amazon's marketplace ids by selling region (developer guide, "Marketplace IDs").
MARKETPLACE_REGIONS: dict[str, str] = {
    "A2EUQ1WTGCTBG2": "na", "ATVPDKIKX0DER": "na", "A1AM78C64UM0Y8": "na", "A2Q3Y263D00KWC": "na",
    "A28R8C7NBKEWEA": "eu", "A1RKKUPIHCS9HS": "eu", "A1F83G8C2ARO7P": "eu", "A13V1IB3VIYZZH": "eu",
    "AMEN7PMS3EDWL": "eu", "A1805IZSGTT6HS": "eu", "A1PA6795UKMFR9": "eu", "APJ6JRA9NG5V4": "eu",
    "A2NODRKZP88ZB9": "eu", "AE08WJ6YKNBMC": "eu", "A1C3SOZRARQ6R3": "eu", "ARBP9OOSHTCHU": "eu",
    "A33AVAJ2PDY3EV": "eu", "A17E79C6D8DWNP": "eu", "A2VIGQ35RCS4UG": "eu", "A21TJRUUN4KGV": "eu",
    "A19VAU5U5O7RUS": "fe", "A39IBJ37TRP1C6": "fe", "A1VC38T7YXB528": "fe",
}

PRODUCTION_HOSTS = {r: f"https://sellingpartnerapi-{r}.amazon.com" for r in ("na", "eu", "fe")}
SANDBOX_HOSTS = {r: f"https://sandbox.sellingpartnerapi-{r}.amazon.com" for r in ("na", "eu", "fe")}
LWA_TOKEN_URL = "https://api.amazon.com/auth/o2/token"


class UnknownMarketplace(ValueError):
    pass


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
        region = MARKETPLACE_REGIONS.get(marketplace_id)
        if region is None:
            raise UnknownMarketplace(f"marketplace {marketplace_id!r} is not a known Amazon marketplace id")
        return (SANDBOX_HOSTS if sandbox else PRODUCTION_HOSTS)[region]

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
