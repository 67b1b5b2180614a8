"""Which SP-API host a call goes to: marketplace -> region -> production or sandbox base URL,
chosen by the run's sync mode (interfaces.md §2), with the operator's overrides applied."""

from __future__ import annotations

from dataclasses import dataclass

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

MODES = ("test", "preview", "production")


class UnknownMarketplace(ValueError):
    pass


@dataclass(frozen=True)
class Endpoints:
    """SPAPI_ENDPOINT / SPAPI_SANDBOX_ENDPOINT override every region's host (the emulator, a proxy)."""

    production_override: str | None = None
    sandbox_override: str | None = None
    token_url: str = LWA_TOKEN_URL

    def base_url(self, marketplace_id: str, mode: str) -> str:
        if mode not in MODES:
            raise ValueError(f"unknown sync mode {mode!r}")
        sandbox = mode == "test"
        override = self.sandbox_override if sandbox else self.production_override
        if override:
            return override.rstrip("/")
        region = MARKETPLACE_REGIONS.get(marketplace_id)
        if region is None:
            raise UnknownMarketplace(f"marketplace {marketplace_id!r} is not a known Amazon marketplace id")
        return (SANDBOX_HOSTS if sandbox else PRODUCTION_HOSTS)[region]


def recorded_endpoint(mode: str) -> str:
    """interfaces.md §2: test -> "test" (sandbox host); preview and production -> "production"."""
    return "test" if mode == "test" else "production"
