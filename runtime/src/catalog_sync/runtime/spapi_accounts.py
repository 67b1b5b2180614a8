"""Selling-partner credentials as the deployment gives them: one account from the environment, or
many from a JSON file. Read here once for both sides of the wire: the submitter logs in with them,
and the Amazon emulator (tests, the demo) knows exactly these applications and sellers.

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


class AccountsError(ValueError):
    pass


@dataclass(frozen=True)
class SellerCredentials:
    seller_id: str
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    options: Mapping = field(default_factory=dict)  # the entry's other keys, e.g. the submitter's `rates`
    origin: str = ""  # where it was read, for error messages: "SPAPI_ACCOUNTS_FILE=…: seller S1"


@dataclass(frozen=True)
class CredentialsFound:
    sellers: dict[str, SellerCredentials]
    default_seller: str | None


def credentials_from_env(env: Mapping[str, str]) -> CredentialsFound:
    """The accounts a submitter with this environment uses: the file's, plus the single account
    of LWA_REFRESH_TOKEN + SELLER_ID unless the file already names that seller."""
    path = env.get("SPAPI_ACCOUNTS_FILE", "").strip()
    client_id = env.get("LWA_CLIENT_ID", "").strip()
    client_secret = env.get("LWA_CLIENT_SECRET", "").strip()
    seller = env.get("SELLER_ID", "").strip() or None
    sellers: dict[str, SellerCredentials] = {}
    if path:
        sellers.update(read_accounts_file(path, client_id, client_secret, source=f"SPAPI_ACCOUNTS_FILE={path}"))
    refresh = env.get("LWA_REFRESH_TOKEN", "").strip()
    if refresh:
        if not (seller and client_id and client_secret):
            raise AccountsError("LWA_REFRESH_TOKEN needs SELLER_ID, LWA_CLIENT_ID and LWA_CLIENT_SECRET too")
        sellers.setdefault(seller, SellerCredentials(seller, client_id, client_secret, refresh, origin="LWA_*"))
    return CredentialsFound(sellers, seller)


def read_accounts_file(path: str | Path, client_id: str = "", client_secret: str = "", *,
                       source: str | None = None) -> dict[str, SellerCredentials]:
    source = source or str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise AccountsError(f"{source}: cannot read it ({exc.strerror})") from None
    except ValueError as exc:
        raise AccountsError(f"{source}: not valid JSON ({exc})") from None
    return parse_credentials(data, client_id, client_secret, source=source)


def parse_credentials(data, client_id: str = "", client_secret: str = "", *,
                      source: str = "accounts") -> dict[str, SellerCredentials]:
    """Seller id -> credentials from the file's JSON; `client_id`/`client_secret` are the defaults
    for entries (and files) that name no application."""
    if not isinstance(data, dict):
        raise AccountsError(f"{source}: expected a JSON object")
    client_id = str(data.get("client_id") or client_id)
    client_secret = str(data.get("client_secret") or client_secret)
    sellers = data["sellers"] if "sellers" in data else {
        k: v for k, v in data.items() if k not in ("client_id", "client_secret")}
    if not isinstance(sellers, dict):
        raise AccountsError(f"{source}: `sellers` must map seller ids to refresh tokens")
    found = {}
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
        options = {k: v for k, v in entry.items() if k not in ("refresh_token", "client_id", "client_secret")}
        found[seller_id] = SellerCredentials(seller_id, cid, secret, entry["refresh_token"], options, where)
    return found

