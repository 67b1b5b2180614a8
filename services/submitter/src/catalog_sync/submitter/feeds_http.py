"""The bulk lane's HTTP adapter: Feeds API calls and the presigned document URLs, on the SP-API
client's aiohttp session, token cache and connection limits (spapi_client.py).

Every Feeds call passes the mode guard (runtime/sync_modes.check_feed_request) before it leaves;
the document URLs carry no access token (they are presigned), as Amazon's S3 URLs do."""

from __future__ import annotations

import aiohttp
import orjson
from yarl import URL

from catalog_sync.runtime.sync_modes import FEED_OPERATIONS, ModeViolation, check_feed_request
from catalog_sync.submitter.accounts import Account
from catalog_sync.submitter.classification import Answer
from catalog_sync.submitter.spapi_client import SpApiClient, _failure


class FeedsClient(SpApiClient):
    """The SP-API client that also speaks the Feeds API (feeds.FeedsTransport)."""

    async def feeds_call(self, account: Account, base_url: str, mode: str, operation: str, path: str,
                   query: str = "", body: dict | None = None) -> Answer:
        try:
            check_feed_request(mode, operation, self._endpoints.host_kind(base_url) or f"unknown ({base_url})")
        except ModeViolation as refused:
            if self._on_refused is not None:
                self._on_refused(refused)
            raise
        try:
            token = await self._access_token(account)
        except Exception as exc:  # LoginFailed: no call went out
            return Answer(None, failure="login_failed", detail=str(exc))
        host = self._host(base_url)
        headers = {"x-amz-access-token": token.value}
        data = None
        if body is not None:
            headers["content-type"] = "application/json"
            data = orjson.dumps(body)
        url = URL(host.base + path + (f"?{query}" if query else ""), encoded=True)
        async with host.slots:
            return await self._exchange(FEED_OPERATIONS[operation], url, data, headers, host.proxy, token.generation)

    async def upload(self, url: str, content_type: str, content: bytes) -> Answer:
        # No access token and no default accept header on a presigned URL: its signature covers
        # the content type createFeedDocument was given.
        try:
            async with self._http().put(URL(url, encoded=True), data=content, headers={"content-type": content_type},
                                        proxy=self._host(_origin(url)).proxy, allow_redirects=False) as response:
                await response.read()
                return Answer(response.status)
        except (TimeoutError, aiohttp.ClientError) as exc:
            failure, detail = _failure(exc)
            return Answer(None, failure=failure, detail=detail)

    async def download(self, url: str) -> tuple[Answer, bytes]:
        try:
            async with self._http().get(URL(url, encoded=True), proxy=self._host(_origin(url)).proxy,
                                        allow_redirects=False, auto_decompress=False) as response:
                content = await response.read()
                return Answer(response.status), content
        except (TimeoutError, aiohttp.ClientError) as exc:
            failure, detail = _failure(exc)
            return Answer(None, failure=failure, detail=detail), b""


def _origin(url: str) -> str:
    return str(URL(url).origin())
