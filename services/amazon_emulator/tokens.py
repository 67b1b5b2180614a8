"""Login with Amazon as the emulator plays it: refresh token in, short-lived access token out.

The emulator remembers every access token it issued, so the Listings endpoints can answer 403
Unauthorized for a token it never issued or one that expired (the path a client's refresh logic
must survive)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Grant:
    client_id: str
    refresh_token: str
    expires_at: float


@dataclass(frozen=True)
class TokenAnswer:
    status: int
    body: dict


class TokenIssuer:
    """POST /auth/o2/token with grant_type=refresh_token.

    `clients` (client_id -> client_secret) and `refresh_tokens` (refresh token -> seller id), when
    given, restrict who may log in; empty means any non-empty credentials are accepted, which is
    what a local demo wants."""

    def __init__(
        self,
        *,
        ttl_seconds: float = 3600.0,
        clients: Mapping[str, str] | None = None,
        refresh_tokens: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.clients = dict(clients or {})
        self.refresh_tokens = dict(refresh_tokens or {})
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
        client_id, secret = form["client_id"], form["client_secret"]
        if self.clients and self.clients.get(client_id) != secret:
            return _oauth_error(401, "invalid_client", "Client authentication failed")
        refresh = form["refresh_token"]
        if refresh in self.revoked or (self.refresh_tokens and refresh not in self.refresh_tokens):
            return _oauth_error(400, "invalid_grant", "The request has an invalid grant parameter : refresh_token")
        now = self._clock()
        if len(self._grants) > 100_000:  # drop expired grants so a long run does not grow without bound
            self._grants = {t: g for t, g in self._grants.items() if g.expires_at > now}
        token = "Atza|" + secrets.token_urlsafe(32)
        self._grants[token] = Grant(client_id, refresh, now + self.ttl_seconds)
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
        self._grants = {t: Grant(g.client_id, g.refresh_token, now) for t, g in self._grants.items()}

    def seller_allowed(self, grant: Grant, seller_id: str) -> bool:
        """A refresh token authorises one selling partner, when the mapping is configured."""
        if not self.refresh_tokens:
            return True
        return self.refresh_tokens.get(grant.refresh_token) == seller_id


def _oauth_error(status: int, error: str, description: str) -> TokenAnswer:
    return TokenAnswer(status, {"error": error, "error_description": description})
