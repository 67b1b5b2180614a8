"""Selling-partner credentials of the submitter: who it logs in as, and each seller's usage-plan
overrides. The SPAPI_ACCOUNTS_FILE format and the LWA_* variables are read by
catalog_sync.runtime.spapi_accounts (documented there), so the emulator knows the same accounts.
Secrets never appear in reprs, logs or events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from catalog_sync.runtime.spapi_accounts import (
    AccountsError,
    SellerCredentials,
    credentials_from_env,
)
from catalog_sync.runtime.usage_plans import UsagePlan
from catalog_sync.submitter.rate import DEFAULT_PLANS

__all__ = ["Account", "Accounts", "AccountsError"]  # AccountsError: raised by Accounts.from_env


@dataclass(frozen=True)
class Account(SellerCredentials):
    """A seller's credentials with its usage-plan overrides (the entry's `rates`) parsed."""

    rates: Mapping[str, UsagePlan] = field(default_factory=dict)


class Accounts:
    def __init__(self, accounts: Mapping[str, Account], default_seller: str | None = None) -> None:
        self._accounts = dict(accounts)
        self.default_seller = default_seller

    def __len__(self) -> int:
        return len(self._accounts)

    def get(self, seller_id: str) -> Account | None:
        return self._accounts.get(seller_id)

    def sellers(self) -> list[str]:
        return sorted(self._accounts)

    def rate_overrides(self) -> dict[str, dict[str, UsagePlan]]:
        return {s: dict(a.rates) for s, a in self._accounts.items() if a.rates}

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Accounts:
        found = credentials_from_env(env)
        return cls({s: _account(c) for s, c in found.sellers.items()}, found.default_seller)


def _account(credentials: SellerCredentials) -> Account:
    return Account(**{f.name: getattr(credentials, f.name) for f in fields(SellerCredentials)},
                   rates=_rates(credentials.options.get("rates"), credentials.origin))


def _rates(raw, where: str) -> dict[str, UsagePlan]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise AccountsError(f"{where}: `rates` must be an object of lanes")
    plans = {}
    for lane, value in raw.items():
        if lane not in DEFAULT_PLANS:
            raise AccountsError(f"{where}: unknown lane {lane!r} (use {', '.join(DEFAULT_PLANS)})")
        if isinstance(value, int | float):
            value = {"rate": value}
        try:
            rate = float(value["rate"])
            burst = int(value.get("burst", DEFAULT_PLANS[lane].burst))
        except (KeyError, TypeError, ValueError):
            raise AccountsError(f"{where}: lane {lane} needs {{\"rate\": <req/s>, \"burst\": <n>}}") from None
        if rate <= 0 or burst < 1:
            raise AccountsError(f"{where}: lane {lane} needs rate > 0 and burst >= 1")
        plans[lane] = UsagePlan(rate, burst)
    return plans
