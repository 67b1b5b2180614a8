"""Login with Amazon as the emulator plays it: who exists (applications and the refresh tokens
sellers gave them), refresh token in, short-lived access token out.

As at Amazon, an access token is worth what its refresh token is: it was issued to one
application (client id + secret) by the selling partner(s) that authorised it, and works for
those sellers only. The emulator remembers every access token it issued, so the Listings
endpoints answer 403 Unauthorized for a token it never issued, one that expired (the path a
client's refresh logic must survive) or one used for another seller."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from catalog_sync.runtime.spapi_accounts import AccountsError, credentials_from_env, parse_credentials


class Credentials(Protocol):
    """One seller's login: runtime.spapi_accounts.SellerCredentials, or a client's own account
    object with the same names (tests give both sides the same accounts). Read-only: frozen
    dataclasses qualify."""

    @property
    def seller_id(self) -> str: ...
    @property
    def client_id(self) -> str: ...
    @property
    def client_secret(self) -> str: ...
    @property
    def refresh_token(self) -> str: ...


@dataclass(frozen=True)
class Authorisation:
    """What a refresh token stands for: the application it was issued to, the sellers it covers."""

    client_id: str
    sellers: frozenset[str]


@dataclass
class LwaAccounts:
    """The applications and sellers Login with Amazon knows. Empty knows nobody: every token
    request is refused. `any_credentials` is the explicit escape hatch for trying the emulator
    by hand: any non-empty client, secret and refresh token log in, and work for any seller."""

    clients: dict[str, str] = field(default_factory=dict, repr=False)  # client id -> secret
    refresh_tokens: dict[str, Authorisation] = field(default_factory=dict, repr=False)
    any_credentials: bool = False

    def add_client(self, client_id: str, secret: str) -> None:
        if not client_id or not secret:
            raise AccountsError("an application needs a client id and a client secret")
        if self.clients.get(client_id, secret) != secret:
            raise AccountsError(f"application {client_id} is given two different client secrets")
        self.clients[client_id] = secret

    def authorise(self, refresh_token: str, seller_id: str, client_id: str) -> None:
        """`seller_id` authorised application `client_id`, which received `refresh_token`."""
        if not refresh_token or not seller_id:
            raise AccountsError("a seller needs a seller id and a refresh token")
        if client_id not in self.clients:
            raise AccountsError(f"seller {seller_id}: application {client_id!r} is not configured")
        known = self.refresh_tokens.get(refresh_token)
        if known is not None and known.client_id != client_id:
            raise AccountsError(f"seller {seller_id}: its refresh token was issued to another application")
        sellers = (known.sellers if known else frozenset()) | {seller_id}
        self.refresh_tokens[refresh_token] = Authorisation(client_id, sellers)

    def add_credentials(self, credentials: Iterable[Credentials]) -> LwaAccounts:
        for c in credentials:
            self.add_client(c.client_id, c.client_secret)
            self.authorise(c.refresh_token, c.seller_id, c.client_id)
        return self

    @classmethod
    def of(cls, credentials: Iterable[Credentials]) -> LwaAccounts:
        return cls().add_credentials(credentials)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LwaAccounts:
        """The accounts a submitter with this environment logs in with (SPAPI_ACCOUNTS_FILE, LWA_*)."""
        return cls.of(credentials_from_env(env).sellers.values())

    @classmethod
    def from_json(cls, data) -> LwaAccounts:
        """The accounts file's JSON (catalog_sync.runtime.spapi_accounts), e.g. sent to /_emulator/config."""
        if isinstance(data, LwaAccounts):
            return data
        if isinstance(data, dict) and data.get("any_credentials") is True:
            return cls(any_credentials=True)
        return cls.of(parse_credentials(data, source="accounts").values())

    def sellers(self) -> set[str]:
        return {s for a in self.refresh_tokens.values() for s in a.sellers}

    def describe(self) -> str:
        if self.any_credentials:
            return "ANY credentials accepted, for any seller (--any-credentials)"
        if not self.clients:
            return "no accounts configured: every token request is refused"
        return f"{len(self.clients)} application(s), {len(self.sellers())} seller(s)"


@dataclass(frozen=True)
class Grant:
    client_id: str
    refresh_token: str
    sellers: frozenset[str] | None  # None: any seller (any_credentials)
    expires_at: float


@dataclass(frozen=True)
class TokenAnswer:
    status: int
    body: dict


class TokenIssuer:
    """POST /auth/o2/token with grant_type=refresh_token, answered as Amazon's LWA does:
    401 invalid_client for an unknown client or a wrong secret, 400 invalid_grant for a refresh
    token that is unknown, revoked or was issued to another application."""

    def __init__(self, accounts: LwaAccounts, *, ttl_seconds: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.accounts = accounts
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._grants: dict[str, Grant] = {}
        self.revoked: set[str] = set()

    def issue(self, form: Mapping[str, str]) -> TokenAnswer:
        grant_type = form.get("grant_type", "")
        if not grant_type:
            return _oauth_error(400, "invalid_request", "The request is missing a required parameter : grant_type")
        if grant_type != "refresh_token":
            return _oauth_error(400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}")
        for name in ("refresh_token", "client_id", "client_secret"):
            if not form.get(name):
                return _oauth_error(400, "invalid_request", f"The request is missing a required parameter : {name}")
        client_id, secret, refresh = form["client_id"], form["client_secret"], form["refresh_token"]
        accounts = self.accounts
        if accounts.any_credentials:
            sellers = None
        else:
            if accounts.clients.get(client_id) != secret:
                return _oauth_error(401, "invalid_client", "Client authentication failed")
            authorisation = accounts.refresh_tokens.get(refresh)
            if authorisation is None or authorisation.client_id != client_id:
                return _invalid_grant()
            sellers = authorisation.sellers
        if refresh in self.revoked:
            return _invalid_grant()
        now = self._clock()
        if len(self._grants) > 100_000:  # drop expired grants so a long run does not grow without bound
            self._grants = {t: g for t, g in self._grants.items() if g.expires_at > now}
        token = "Atza|" + secrets.token_urlsafe(32)
        self._grants[token] = Grant(client_id, refresh, sellers, now + self.ttl_seconds)
        return TokenAnswer(
            200,
            {
                "access_token": token,
                "refresh_token": refresh,
                "token_type": "bearer",
                "expires_in": int(self.ttl_seconds) if self.ttl_seconds >= 1 else self.ttl_seconds,
            },
        )

    def check(self, token: str | None) -> tuple[Grant | None, str]:
        """The grant behind an access token, or None and why it is refused."""
        if not token:
            return None, "Access to requested resource is denied."
        grant = self._grants.get(token)
        if grant is None or grant.refresh_token in self.revoked:
            return None, "The access token you provided is revoked, malformed or invalid."
        if grant.expires_at <= self._clock():
            return None, "The access token you provided has expired."
        return grant, ""

    def expire_all(self) -> None:
        """Make every issued token expired now (tests of the client's refresh path)."""
        now = self._clock()
        self._grants = {t: Grant(g.client_id, g.refresh_token, g.sellers, now) for t, g in self._grants.items()}

    @staticmethod
    def seller_allowed(grant: Grant, seller_id: str) -> bool:
        """A refresh token authorises the selling partner(s) that granted it, no other."""
        return grant.sellers is None or seller_id in grant.sellers


def _invalid_grant() -> TokenAnswer:
    return _oauth_error(400, "invalid_grant", "The request has an invalid grant parameter : refresh_token")


def _oauth_error(status: int, error: str, description: str) -> TokenAnswer:
    return TokenAnswer(status, {"error": error, "error_description": description})
