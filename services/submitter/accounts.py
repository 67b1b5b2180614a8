"""Selling-partner credentials: one account from the environment, or many from a JSON file.

SPAPI_ACCOUNTS_FILE format (JSON):

    {
      "client_id": "amzn1.application-oa2-client.…",      # optional: else LWA_CLIENT_ID
      "client_secret": "…",                                # optional: else LWA_CLIENT_SECRET
      "sellers": {
        "A3SELLER0EXAMPLE": "Atzr|…",                       # seller id -> refresh token, or:
        "A1OTHERSELLER": {
          "refresh_token": "Atzr|…",
          "client_id": "…", "client_secret": "…",          # optional: a different application
          "rates": {"put": {"rate": 10, "burst": 20},       # optional usage plan overrides per lane
                    "preview": {"rate": 2}}                 #   lanes: put patch delete get preview
        }
      }
    }

The `sellers` object may also be the whole file (seller id -> refresh token or object). With no
file, LWA_CLIENT_ID, LWA_CLIENT_SECRET, LWA_REFRESH_TOKEN and SELLER_ID give one account.
Secrets never appear in reprs, logs or events.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from catalog_sync.submitter.rate import DEFAULT_PLANS, LanePlan


class AccountsError(ValueError):
    pass


@dataclass(frozen=True)
class Account:
    seller_id: str
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    rates: Mapping[str, LanePlan] = field(default_factory=dict)


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

    def rate_overrides(self) -> dict[str, dict[str, LanePlan]]:
        return {s: dict(a.rates) for s, a in self._accounts.items() if a.rates}

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Accounts:
        path = env.get("SPAPI_ACCOUNTS_FILE", "").strip()
        client_id = env.get("LWA_CLIENT_ID", "").strip()
        client_secret = env.get("LWA_CLIENT_SECRET", "").strip()
        seller = env.get("SELLER_ID", "").strip() or None
        accounts: dict[str, Account] = {}
        if path:
            try:
                data = json.loads(Path(path).read_text(encoding="utf-8"))
            except OSError as exc:
                raise AccountsError(f"SPAPI_ACCOUNTS_FILE={path}: cannot read it ({exc.strerror})") from None
            except ValueError as exc:
                raise AccountsError(f"SPAPI_ACCOUNTS_FILE={path}: not valid JSON ({exc})") from None
            accounts.update(parse_accounts(data, client_id, client_secret, source=f"SPAPI_ACCOUNTS_FILE={path}"))
        refresh = env.get("LWA_REFRESH_TOKEN", "").strip()
        if refresh:
            if not (seller and client_id and client_secret):
                raise AccountsError("LWA_REFRESH_TOKEN needs SELLER_ID, LWA_CLIENT_ID and LWA_CLIENT_SECRET too")
            accounts.setdefault(seller, Account(seller, client_id, client_secret, refresh))
        return cls(accounts, seller)


def parse_accounts(data, client_id: str = "", client_secret: str = "", *, source: str = "accounts") -> dict[str, Account]:
    if not isinstance(data, dict):
        raise AccountsError(f"{source}: expected a JSON object")
    client_id = str(data.get("client_id") or client_id)
    client_secret = str(data.get("client_secret") or client_secret)
    sellers = data["sellers"] if "sellers" in data else {
        k: v for k, v in data.items() if k not in ("client_id", "client_secret")}
    if not isinstance(sellers, dict):
        raise AccountsError(f"{source}: `sellers` must map seller ids to refresh tokens")
    accounts = {}
    for seller_id, entry in sellers.items():
        where = f"{source}: seller {seller_id}"
        if isinstance(entry, str):
            entry = {"refresh_token": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("refresh_token"), str) or not entry["refresh_token"]:
            raise AccountsError(f"{where}: needs a refresh_token")
        cid = str(entry.get("client_id") or client_id)
        secret = str(entry.get("client_secret") or client_secret)
        if not cid or not secret:
            raise AccountsError(f"{where}: no client_id/client_secret (in the file or LWA_CLIENT_ID/LWA_CLIENT_SECRET)")
        accounts[seller_id] = Account(seller_id, cid, secret, entry["refresh_token"], _rates(entry.get("rates"), where))
    return accounts


def _rates(raw, where: str) -> dict[str, LanePlan]:
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
        plans[lane] = LanePlan(rate, burst)
    return plans
