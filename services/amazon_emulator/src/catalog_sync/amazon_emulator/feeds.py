"""The Feeds API 2021-06-30 for JSON_LISTINGS_FEED, as the production host answers it:
createFeedDocument -> upload to the presigned URL (the emulator's document store) -> createFeed
-> getFeed (IN_QUEUE, IN_PROGRESS, then DONE, FATAL or CANCELLED) -> getFeedDocument -> the
processing report (gzip JSON, Amazon's processing-report schema v2), plus getFeeds and cancelFeed.

Each message of a feed goes through the Listings behaviour exactly as the matching Listings Items
call would (listings.py: UPDATE -> putListingsItem, PATCH and PARTIAL_UPDATE -> patchListingsItem,
DELETE -> deleteListingsItem), so a feed and an item call of the same content get the same verdict.

Processing is asynchronous on the emulator's clock (quota.ScaledClock): a feed spends
`feed_processing_s` of Amazon time after createFeed, half in queue, half in progress. Its messages
are judged while it is in progress, as Amazon applies them, and it is DONE (or FATAL) once that
time is over and every message is judged: the emulator's own CPU time counts only where it
outlasts Amazon's processing time (on a time-scaled clock it would count that many times over).
Everything runs under the emulator's lock."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qs

import orjson

from catalog_sync.amazon_emulator.listings import (
    CANNOT_PARSE,
    REQUIREMENTS,
    Answer,
    ListingRequest,
    ListingsBehaviour,
    errors,
)
from catalog_sync.runtime.events import new_event_id

FEEDS_PREFIX = "/feeds/2021-06-30/"
DOCUMENTS_PATH = "/_documents/"  # the emulator's stand-in for Amazon's presigned S3 URLs
JSON_LISTINGS_FEED = "JSON_LISTINGS_FEED"
MAX_MESSAGES = 25_000  # messages per JSON_LISTINGS_FEED document
MAX_DOCUMENT_BYTES = 10_000_000  # Amazon's recommended maximum feed size; larger ends FATAL here
URL_TTL_S = 300.0  # presigned URLs expire after 5 minutes (the model)
OPERATION_TYPES = ("UPDATE", "PARTIAL_UPDATE", "PATCH", "DELETE")
_ID = re.compile(r"[0-9]+")


@dataclass
class Document:
    document_id: str
    owner: str            # the refresh token's selling partner (feed documents are per seller)
    content_type: str
    created: float        # emulator clock
    content: bytes | None = None
    compression: str | None = None


@dataclass
class Feed:
    feed_id: str
    owner: str
    sandbox: bool
    marketplace_ids: list[str]
    document_id: str
    created: float
    created_wall: float
    status: str = "IN_QUEUE"
    started_wall: float | None = None
    ended_wall: float | None = None
    result_document_id: str | None = None
    report: dict | None = None  # kept for tests
    processing: Processing | None = None  # while its messages are being judged

    def body(self) -> dict:
        body = {"feedId": self.feed_id, "feedType": JSON_LISTINGS_FEED, "marketplaceIds": self.marketplace_ids,
                "createdTime": _iso(self.created_wall), "processingStatus": self.status}
        if self.started_wall is not None:
            body["processingStartTime"] = _iso(self.started_wall)
        if self.ended_wall is not None:
            body["processingEndTime"] = _iso(self.ended_wall)
        if self.result_document_id is not None:
            body["resultFeedDocumentId"] = self.result_document_id
        return body


@dataclass
class FeedCall:
    """One Feeds or document request, after the token check."""

    operation: str
    method: str
    path: str         # below FEEDS_PREFIX, or the document id for the document store
    query: str
    content_type: str
    body: bytes
    owner: str
    sandbox: bool
    base_url: str


def operation_of(method: str, path: str) -> str | None:
    """The Feeds operation of a request below FEEDS_PREFIX, or None (404)."""
    parts = path.split("/")
    if parts == ["documents"] and method == "POST":
        return "createFeedDocument"
    if len(parts) == 2 and parts[0] == "documents" and method == "GET":
        return "getFeedDocument"
    if parts == ["feeds"]:
        return {"POST": "createFeed", "GET": "getFeeds"}.get(method)
    if len(parts) == 2 and parts[0] == "feeds":
        return {"GET": "getFeed", "DELETE": "cancelFeed"}.get(method)
    return None


@dataclass
class FeedsBehaviour:
    listings: ListingsBehaviour
    clock: Callable[[], float]               # the emulator's (time-scaled) clock, seconds
    wall: Callable[[], float]                # epoch seconds for the times Amazon shows
    processing_s: float = 30.0               # Amazon time from createFeed until its messages are judged
    # True: messages are judged in chunks by the emulator's processor thread (a served emulator),
    # so a 25,000-message feed does not stall every other request; False: at once, when due.
    background: bool = False
    documents: dict[str, Document] = field(default_factory=dict)
    feeds: dict[str, Feed] = field(default_factory=dict)
    created: list[dict] = field(default_factory=list)  # every createFeed accepted (tests)
    # owner (refresh token) -> the sellers that granted it (None: any); a feed acts for those only
    owners: dict[str, frozenset[str] | None] = field(default_factory=dict)
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32))  # signs the presigned URLs
    _next_id: int = 50_000_000_000

    def reset(self) -> None:
        self.documents.clear()
        self.feeds.clear()
        self.created.clear()

    def _id(self) -> str:
        self._next_id += 1  # numeric ids, like Amazon's
        return str(self._next_id)

    # ---- the operations -------------------------------------------------------------------
    def handle(self, call: FeedCall) -> Answer:
        self.advance()
        if call.operation == "createFeedDocument":
            return self._create_document(call)
        if call.operation == "createFeed":
            return self._create_feed(call)
        if call.operation == "getFeeds":
            return self._get_feeds(call)
        feed_or_doc = call.path.split("/")[1]
        if call.operation == "getFeedDocument":
            document = self.documents.get(feed_or_doc)
            if document is None or document.owner != call.owner:
                return errors(404, "NotFound", "The feed document was not found.")
            answer = {"feedDocumentId": document.document_id, "url": self._url(call, document)}
            if document.compression:
                answer["compressionAlgorithm"] = document.compression
            return Answer(200, answer)
        feed = self.feeds.get(feed_or_doc)
        if feed is None or feed.owner != call.owner or feed.sandbox != call.sandbox:
            return errors(404, "NotFound", f"Feed {feed_or_doc} was not found.")
        if call.operation == "cancelFeed":
            if feed.status != "IN_QUEUE":
                return errors(400, "InvalidInput", f"Feed {feed.feed_id} is {feed.status} and cannot be cancelled.")
            feed.status = "CANCELLED"
            feed.ended_wall = self.wall()
            return Answer(200, {})
        return Answer(200, feed.body())

    def _url(self, call: FeedCall, document: Document) -> str:
        """A presigned URL: valid for URL_TTL_S of Amazon time from now, signed so it cannot be
        stretched (a client must ask getFeedDocument again for a fresh one)."""
        expires = f"{self.clock() + URL_TTL_S:.3f}"
        return f"{call.base_url}{DOCUMENTS_PATH}{document.document_id}?expires={expires}&signature=" \
               f"{self._sign(document.document_id, expires)}"

    def _sign(self, document_id: str, expires: str) -> str:
        return hmac.new(self._key, f"{document_id}|{expires}".encode(), hashlib.sha256).hexdigest()

    def _create_document(self, call: FeedCall) -> Answer:
        body = _object(call.body)
        content_type = body.get("contentType") if body else None
        if not isinstance(content_type, str) or not content_type:
            return errors(400, "InvalidInput", CANNOT_PARSE, "contentType is required.")
        document = Document(f"amzn1.tortuga.4.na.{new_event_id()}", call.owner, content_type, self.clock())
        self.documents[document.document_id] = document
        return Answer(201, {"feedDocumentId": document.document_id, "url": self._url(call, document)})

    def _create_feed(self, call: FeedCall) -> Answer:
        body = _object(call.body)
        if body is None:
            return errors(400, "InvalidInput", CANNOT_PARSE, "The request body must be a JSON object.")
        feed_type, marketplaces, document_id = (body.get("feedType"), body.get("marketplaceIds"),
                                                body.get("inputFeedDocumentId"))
        if not isinstance(feed_type, str) or not isinstance(document_id, str) or not isinstance(marketplaces, list) \
                or not marketplaces or not all(isinstance(m, str) for m in marketplaces):
            return errors(400, "InvalidInput", CANNOT_PARSE,
                          "feedType, marketplaceIds (at least one) and inputFeedDocumentId are required.")
        if feed_type != JSON_LISTINGS_FEED:
            return errors(400, "InvalidInput", f"Invalid feedType: {feed_type}.",
                          "The emulator processes JSON_LISTINGS_FEED only.")
        document = self.documents.get(document_id)
        if document is None or document.owner != call.owner:
            return errors(400, "InvalidInput", f"Invalid inputFeedDocumentId: {document_id}.")
        if document.content is None:
            return errors(400, "InvalidInput", f"Invalid inputFeedDocumentId: {document_id}.",
                          "Nothing was uploaded to the feed document's URL.")
        feed = Feed(self._id(), call.owner, call.sandbox, list(marketplaces), document_id, self.clock(), self.wall())
        self.feeds[feed.feed_id] = feed
        self.created.append({"feed_id": feed.feed_id, "document_id": document_id, "owner": call.owner})
        return Answer(202, {"feedId": feed.feed_id})

    def _get_feeds(self, call: FeedCall) -> Answer:
        params = parse_qs(call.query, keep_blank_values=True)
        types = [t for v in params.get("feedTypes", []) for t in v.split(",") if t]
        if not types:
            return errors(400, "InvalidInput", "Missing required parameter: feedTypes.")
        since = params.get("createdSince", [None])[0]
        try:
            since_epoch = _parse_iso(since) if since else self.wall() - 90 * 86400
        except ValueError:
            return errors(400, "InvalidInput", f"Invalid value for parameter createdSince: {since}.")
        try:
            page_size = int(params.get("pageSize", ["10"])[0])
        except ValueError:
            page_size = 0
        if not 1 <= page_size <= 100:
            return errors(400, "InvalidInput", "pageSize must be between 1 and 100.")
        found = [f for f in self.feeds.values() if f.owner == call.owner and f.sandbox == call.sandbox
                 and JSON_LISTINGS_FEED in types and f.created_wall >= since_epoch - 1e-3]
        found.sort(key=lambda f: f.created_wall, reverse=True)  # newest first, as Amazon lists them
        start = int(params["nextToken"][0]) if params.get("nextToken", [""])[0].isdigit() else 0
        page = found[start:start + page_size]
        answer: dict = {"feeds": [f.body() for f in page]}
        if start + page_size < len(found):
            answer["nextToken"] = str(start + page_size)
        return Answer(200, answer)

    # ---- the document store -------------------------------------------------------------
    def document(self, method: str, document_id: str, query: str, content_type: str, body: bytes) -> tuple[int, bytes, str]:
        """PUT (upload) or GET (download) on a presigned URL: (status, body, content type)."""
        self.advance()
        document = self.documents.get(document_id)
        params = parse_qs(query)
        expires, signature = params.get("expires", [""])[0], params.get("signature", [""])[0]
        if document is None or not expires or not hmac.compare_digest(signature, self._sign(document_id, expires)):
            return 403, b"<Error><Code>AccessDenied</Code></Error>", "application/xml"
        if self.clock() > float(expires):
            return 403, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>", \
                "application/xml"
        if method == "PUT":
            if content_type != document.content_type:
                # The presigned URL is signed for the content type createFeedDocument named.
                return 403, b"<Error><Code>SignatureDoesNotMatch</Code></Error>", "application/xml"
            if any(f.document_id == document_id for f in self.feeds.values()):
                return 403, b"<Error><Code>AccessDenied</Code></Error>", "application/xml"
            document.content = body
            return 200, b"", "text/plain"
        if method == "GET" and document.content is not None:
            return 200, document.content, document.content_type
        return 404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml"

    # ---- processing -----------------------------------------------------------------------
    def advance(self) -> None:
        """Move feeds along the clock: IN_QUEUE -> IN_PROGRESS at half the processing time,
        processed (DONE or FATAL) at the end."""
        now = self.clock()
        for feed in self.feeds.values():
            if feed.status in ("DONE", "FATAL", "CANCELLED"):
                continue
            if feed.status == "IN_QUEUE" and now >= feed.created + self.processing_s / 2:
                feed.status = "IN_PROGRESS"
                feed.started_wall = self.wall()
                self._process(feed)
            if (feed.status == "IN_PROGRESS" and feed.processing is not None and feed.processing.report is not None
                    and now >= feed.created + self.processing_s):
                self._finish(feed)

    def _process(self, feed: Feed) -> None:
        """Judge the feed's messages now (no background processor), or hand them to the processor
        (`work`); either way it is finished by `advance` once its processing time is over."""
        feed.processing = Processing(self.documents[feed.document_id].content or b"", feed.feed_id,
                                     feed.marketplace_ids, feed.sandbox, self.listings, self._sellers_of(feed))
        if not self.background:
            feed.processing.step(len(feed.processing.messages) or 1)

    def work(self, budget: int = 500) -> bool:
        """The background processor's turn: up to `budget` messages of the oldest feed being
        processed (the caller holds the emulator's lock). True while work remains."""
        feed = next((f for f in self.feeds.values() if f.status == "IN_PROGRESS" and f.processing is not None
                     and f.processing.report is None), None)
        if feed is None or feed.processing is None:
            return False
        feed.processing.step(budget)
        return True

    def _finish(self, feed: Feed) -> None:
        assert feed.processing is not None and feed.processing.report is not None  # step() finished it
        report, fatal = feed.processing.report, feed.processing.fatal
        feed.processing = None
        result = Document(f"amzn1.tortuga.4.na.{new_event_id()}", feed.owner, "application/json", self.clock(),
                          gzip.compress(orjson.dumps(report)), "GZIP")
        self.documents[result.document_id] = result
        feed.report = report
        feed.result_document_id = result.document_id
        feed.status = "FATAL" if fatal else "DONE"
        feed.ended_wall = self.wall()

    def _sellers_of(self, feed: Feed) -> Callable[[str], bool]:
        allowed = self.owners.get(feed.owner)
        return (lambda seller: True) if allowed is None else (lambda seller: seller in allowed)


class Processing:
    """One feed's processing, a chunk of messages at a time (`step`), so a background processor
    can let the emulator's other requests through between chunks as Amazon's would."""

    def __init__(self, content: bytes, feed_id: str, marketplace_ids: list[str], sandbox: bool,
                 listings: ListingsBehaviour, seller_allowed: Callable[[str], bool]) -> None:
        self.feed_id, self.sandbox, self.listings = feed_id, sandbox, listings
        self.marketplace = marketplace_ids[0]
        self.report: dict | None = None
        self.fatal = False
        self.messages: list = []
        self.position = self.accepted = self.invalid = 0
        self.issues: list[dict] = []
        self.seller = ""
        problem = self._parse(content, seller_allowed)
        if problem is not None:
            self.fatal = True
            self.report = report(self.seller, feed_id, [{"code": "100001", "severity": "ERROR", "message": problem}],
                                 0, 0, 0)

    def _parse(self, content: bytes, seller_allowed: Callable[[str], bool]) -> str | None:
        if len(content) > MAX_DOCUMENT_BYTES:
            return f"The feed is {len(content)} bytes; the limit is {MAX_DOCUMENT_BYTES} bytes."
        try:
            document = orjson.loads(content)
        except ValueError:
            return "The feed document is not valid JSON."
        header = document.get("header") if isinstance(document, dict) else None
        messages = document.get("messages") if isinstance(document, dict) else None
        seller = header.get("sellerId") if isinstance(header, dict) else None
        self.seller = seller if isinstance(seller, str) else ""
        if not isinstance(header, dict) or not isinstance(seller, str) or header.get("version") != "2.0":
            return "The feed header needs sellerId and version \"2.0\"."
        if not seller_allowed(seller):
            return f"The feed's sellerId {seller} is not the selling partner that submitted it."
        if not isinstance(messages, list) or not messages:
            return "The feed has no messages."
        if len(messages) > MAX_MESSAGES:
            return f"The feed has {len(messages)} messages; the limit is {MAX_MESSAGES}."
        ids = [m.get("messageId") if isinstance(m, dict) else None for m in messages]
        if len({i for i in ids if isinstance(i, int)}) != len(ids) or any(not isinstance(i, int) or i < 1 for i in ids):
            return "Every message needs a messageId, a positive integer unique within the feed."
        self.messages = messages
        return None

    def step(self, budget: int) -> bool:
        """Judge up to `budget` more messages; True once the report is ready."""
        if self.report is not None:
            return True
        for message in self.messages[self.position:self.position + budget]:
            found = message_issues(message, self.seller, self.marketplace, self.sandbox, self.listings)
            self.issues += found
            if any(i["severity"] == "ERROR" for i in found):
                self.invalid += 1
            else:
                self.accepted += 1
        self.position += budget
        if self.position >= len(self.messages):
            self.report = report(self.seller, self.feed_id, self.issues, len(self.messages), self.accepted,
                                 self.invalid)
        return self.report is not None


def process_document(content: bytes, feed_id: str, marketplace_ids: list[str], sandbox: bool,
                     listings: ListingsBehaviour, seller_allowed: Callable[[str], bool]) -> tuple[dict, bool]:
    """A JSON_LISTINGS_FEED document -> (its processing report, whether the feed is FATAL), at once."""
    processing = Processing(content, feed_id, marketplace_ids, sandbox, listings, seller_allowed)
    processing.step(len(processing.messages) or 1)
    assert processing.report is not None  # one step over every message finishes it
    return processing.report, processing.fatal


def message_issues(message: dict, seller: str, marketplace: str, sandbox: bool,
                   listings: ListingsBehaviour) -> list[dict]:
    """One feed message through the Listings behaviour: its issues in the report's form."""
    message_id, sku, kind = message["messageId"], message.get("sku"), message.get("operationType")

    def problem(code: str, text: str, attribute: str | None = None) -> list[dict]:
        found = {"messageId": message_id, "code": code, "severity": "ERROR", "message": text}
        if isinstance(sku, str) and sku:
            found["sku"] = sku
        if attribute:
            found["attributeName"] = attribute
        return [found]

    if not isinstance(sku, str) or not sku:
        return problem("100002", "The message has no sku.")
    if kind not in OPERATION_TYPES:
        return problem("100002", f"operationType must be one of {', '.join(OPERATION_TYPES)}.")
    if kind == "DELETE":
        method, body = "DELETE", None
    elif kind == "UPDATE":
        requirements = message.get("requirements", "LISTING")
        if requirements not in REQUIREMENTS:
            return problem("100002", f"requirements must be one of {', '.join(REQUIREMENTS)}.")
        method, body = "PUT", {"productType": message.get("productType"), "requirements": requirements,
                               "attributes": message.get("attributes")}
    elif kind == "PATCH":
        method, body = "PATCH", {"productType": message.get("productType"), "patches": message.get("patches")}
    else:  # PARTIAL_UPDATE: the given attributes replaced, the others kept
        attributes = message.get("attributes")
        if not isinstance(attributes, dict) or not attributes:
            return problem("100002", "PARTIAL_UPDATE needs attributes.")
        method, body = "PATCH", {"productType": message.get("productType"), "patches": [
            {"op": "replace", "path": f"/attributes/{name}", "value": value} for name, value in attributes.items()]}
    request = ListingRequest(method=method, seller_id=seller, sku=sku, marketplace_ids=[marketplace], mode=None,
                             included_data=None, content_type="application/json",
                             body=orjson.dumps(body) if body is not None else b"", sandbox=sandbox)
    answer = listings.handle(request)
    if answer.status != 200:
        error = answer.body["errors"][0]
        return problem(str(error["code"]), " ".join(filter(None, (error["message"], error.get("details")))))
    found = []
    for entry in answer.body.get("issues") or []:
        item = {"messageId": message_id, "sku": sku, "code": entry["code"], "severity": entry["severity"],
                "message": entry["message"]}
        if entry.get("attributeNames"):
            item["attributeName"] = entry["attributeNames"][0]
        found.append(item)
    if answer.body.get("status") == "INVALID" and not any(i["severity"] == "ERROR" for i in found):
        found += problem("100003", "The listing was not accepted.")
    return found


def report(seller: str, feed_id: str, issues: list[dict], processed: int, accepted: int, invalid: int) -> dict:
    errors_ = sum(1 for i in issues if i["severity"] == "ERROR")
    warnings = sum(1 for i in issues if i["severity"] == "WARNING")
    return {"header": {"sellerId": seller, "version": "2.0", "feedId": feed_id}, "issues": issues,
            "summary": {"errors": errors_, "warnings": warnings, "messagesProcessed": processed,
                        "messagesAccepted": accepted, "messagesInvalid": invalid}}


def _object(body: bytes) -> dict | None:
    try:
        value = orjson.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

