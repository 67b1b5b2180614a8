"""Product type schemas straight from Amazon: getDefinitionsProductType, then the schema download.

An adapter (httpx): the validator's core sees only the `SchemaSource` protocol. The definition
names the schema's `link.resource` (a plain GET, no token, valid for 7 days) and its `checksum`
(Base64 MD5). Schemas are cached on disk by checksum, so a restart or a new version of the
definition with unchanged schema downloads nothing; when Amazon cannot be reached, the last
schema fetched for that product type, marketplace and requirements set is used.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import structlog

from catalog_sync.runtime import __version__
from catalog_sync.runtime.marketplaces import PRODUCTION_HOSTS, UnknownMarketplace, region_of

from .schema_sources import LoadedSchema, SchemaUnavailable

log = structlog.get_logger()

USER_AGENT = f"catalog-sync/{__version__} (Language=Python)"
# Refresh the access token this long before Amazon says it expires.
TOKEN_MARGIN_S = 60.0
_SAFE = re.compile(r"[^A-Za-z0-9_-]")


class LwaTokens:
    """Login with Amazon access tokens from a refresh token, cached until shortly before expiry."""

    def __init__(self, client: httpx.Client, *, token_url: str, client_id: str, client_secret: str,
                 refresh_token: str, clock: Callable[[], float] = time.monotonic):
        self._client = client
        self._token_url = token_url
        self._form = {"grant_type": "refresh_token", "refresh_token": refresh_token,
                      "client_id": client_id, "client_secret": client_secret}
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0

    def access_token(self) -> str:
        if self._token is None or self._clock() >= self._expires_at:
            response = self._client.post(self._token_url, data=self._form, headers={"User-Agent": USER_AGENT})
            if response.status_code != 200:
                # The body may echo the request; never put it (or the form) in a message.
                raise SchemaUnavailable("product_type.unavailable",
                                        f"Login with Amazon refused the credentials (HTTP {response.status_code})")
            body = response.json()
            self._token = body["access_token"]
            self._expires_at = self._clock() + float(body.get("expires_in", 3600)) - TOKEN_MARGIN_S
        return self._token

    def forget(self) -> None:
        self._token = None


class AmazonDefinitionsSource:
    def __init__(self, client: httpx.Client, tokens: LwaTokens, cache_dir: Path, *,
                 endpoint: str | None = None, max_age_s: float = 24 * 3600, locale: str = "DEFAULT"):
        self._client = client
        self._tokens = tokens
        self._cache_dir = Path(cache_dir)
        self._endpoint = endpoint.rstrip("/") if endpoint else None
        self._max_age_s = max_age_s
        self._locale = locale

    def __str__(self) -> str:
        return "Amazon's Product Type Definitions API"

    def load(self, product_type: str, marketplace_id: str, requirements: str) -> LoadedSchema | None:
        latest = self._cache_dir / product_type / f"{_safe(marketplace_id)}-{requirements}.latest"
        try:
            definition = self._definition(product_type, marketplace_id, requirements)
        except (httpx.HTTPError, SchemaUnavailable, ValueError) as exc:
            stale = self._cached(latest.read_text().strip()) if latest.exists() else None
            if stale is None:
                if isinstance(exc, SchemaUnavailable):
                    raise
                raise SchemaUnavailable("product_type.unavailable",
                                        f"the definition of product type {product_type} could not be fetched "
                                        f"from Amazon: {type(exc).__name__}") from exc
            log.warning("using cached product type schema", product_type=product_type, error=type(exc).__name__)
            return self._loaded(stale, product_type)
        if definition is None:
            return None
        link = definition["schema"]["link"]["resource"]
        checksum = definition["schema"]["checksum"]
        path = self._cached(checksum)
        if path is None:
            path = self._download(link, checksum, product_type)
        latest.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(latest, checksum.encode())
        return self._loaded(path, product_type)

    def _definition(self, product_type: str, marketplace_id: str, requirements: str) -> dict | None:
        url = f"{self._endpoint_for(marketplace_id)}/definitions/2020-09-01/productTypes/{product_type}"
        params = {"marketplaceIds": marketplace_id, "requirements": requirements,
                  "requirementsEnforced": "ENFORCED", "locale": self._locale}
        for attempt in (1, 2):
            headers = {"x-amz-access-token": self._tokens.access_token(), "User-Agent": USER_AGENT,
                       "Accept": "application/json"}
            response = self._client.get(url, params=params, headers=headers)
            if response.status_code == 403 and attempt == 1:
                self._tokens.forget()  # an expired token answers 403: refresh once
                continue
            break
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise SchemaUnavailable("product_type.unavailable",
                                    f"Amazon answered HTTP {response.status_code} for the definition of product "
                                    f"type {product_type} (request id {response.headers.get('x-amzn-RequestId', '-')})")
        return response.json()

    def _endpoint_for(self, marketplace_id: str) -> str:
        if self._endpoint:
            return self._endpoint
        try:
            return PRODUCTION_HOSTS[region_of(marketplace_id)]
        except UnknownMarketplace:
            raise SchemaUnavailable("product_type.unavailable",
                                    f"marketplace {marketplace_id} is not a known Amazon marketplace") from None

    def _cached(self, checksum: str) -> Path | None:
        path = self._cache_dir / "schemas" / f"{_safe(checksum)}.json"
        return path if path.exists() else None

    def _download(self, link: str, checksum: str, product_type: str) -> Path:
        # The link is pre-signed: no access token (and none must leak to another host).
        response = self._client.get(link, headers={"User-Agent": USER_AGENT})
        if response.status_code != 200:
            raise SchemaUnavailable("product_type.unavailable",
                                    f"the schema of product type {product_type} could not be downloaded "
                                    f"(HTTP {response.status_code})")
        body = response.content
        if base64.b64encode(hashlib.md5(body).digest()).decode() != checksum:
            raise SchemaUnavailable("product_type.unavailable",
                                    f"the schema of product type {product_type} does not match Amazon's checksum")
        path = self._cache_dir / "schemas" / f"{_safe(checksum)}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, body)
        log.info("product type schema downloaded", product_type=product_type, bytes=len(body))
        return path

    def _loaded(self, path: Path, product_type: str) -> LoadedSchema:
        try:
            schema = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise SchemaUnavailable("product_type.unavailable",
                                    f"the cached schema of product type {product_type} cannot be read ({path})") from exc
        return LoadedSchema(schema, str(path), f"amazon:{path.name}", True, self._max_age_s)


def _safe(text: str) -> str:
    """Checksums are Base64 (`+`, `/`, `=`): a file name needs a safe spelling, kept unique."""
    return _SAFE.sub(lambda m: f"~{ord(m.group()):02x}", text)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
