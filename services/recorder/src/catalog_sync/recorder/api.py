"""The read API (interfaces.md §5) and the web page, served by FastAPI; OpenAPI at /docs.

Handlers are plain `def`s: FastAPI runs them on its thread pool, and the store's small
connection pool bounds the database connections they use. Every error answers one shape,
{"detail": "<text>"}: 400 for a bad parameter (FastAPI's own validation included), 401, 404, 503.
"""

from __future__ import annotations

import hmac
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from pydantic import BaseModel, Field

from .csv_export import csv_chunks
from .metrics import ApiMetrics
from .read_model import DEFAULT_PAGE, MAX_PAGE, BadQuery, ItemFilters, NotFound, ReadModel
from .store import StoreUnavailable

STATIC_DIR = Path(__file__).resolve().parent / "static"
# The page loads only its own script and style: injected markup could not run even if it slipped through.
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class Counts(BaseModel):
    total: int
    pending: int
    error: int
    finished: int


class Run(BaseModel):
    run_id: str
    mode: str | None
    endpoint: str | None
    status: Literal["in_progress", "finished", "finished_with_errors", "interrupted"]
    started_at: str | None
    finished_at: str | None
    counts: Counts
    item_count: int | None = None
    closed_at: str | None = None
    next_run_at: str | None = None
    last_event_at: str | None = None
    source: str | None = Field(None, description="the catalog file, or 'retry of <run_id>'")
    trigger: Literal["publish", "schedule", "retry"] | None = Field(
        None, description="what started the run: `catalog-sync publish`, `schedule` (it announced the next run) "
                          "or `retry` of run `retry_of`")
    retry_of: str | None = None
    duration_s: float | None = Field(None, description="start to finish; to now while in progress, to the last "
                                                        "event once interrupted")


class Activity(BaseModel):
    in_progress: bool
    current_run: Run | None
    last_run: Run | None
    next_run_at: str | None = Field(description="the next scheduled run, while its time is to come")
    missed_run_at: str | None = Field(None, description="a scheduled run announced for this time never started "
                                                        "(the scheduler stopped)")


class Runs(BaseModel):
    runs: list[Run]


class ItemError(BaseModel):
    type: Literal["validation", "amazon_response"]
    code: str | None
    message: str
    details: list[dict[str, Any]]


class Item(BaseModel):
    reference: str
    item_type: str
    seller_id: str | None
    marketplace_id: str
    status: Literal["pending", "error", "finished"]
    run_id: str | None
    synced_at: str | None
    endpoint: str | None
    request_id: str | None
    submission_id: str | None
    error: ItemError | None
    issues: list[dict[str, Any]]
    outcome: str | None = Field(None, description="How the latest sync ended at the submitter: accepted, valid, "
                                "deleted, unchanged, not_sent, preview_not_sent, invalid, rejected, failed")
    note: str | None = Field(None, description="Why nothing reached Amazon, when nothing did (e.g. a delete in "
                             "a preview run)")
    request_run_id: str | None = Field(None, description="the run whose submission request_id belongs to: an earlier "
                                       "run when this one skipped the item as unchanged")
    request_at: str | None = Field(None, description="when that submission was answered")
    resent: bool | None = Field(None, description="whether the item's latest run sent it to Amazon (false: "
                                "unchanged, or nothing to send)")
    feed_id: str | None = Field(None, description="Amazon's feedId when the item was sent in a JSON_LISTINGS_FEED "
                                "(the bulk lane); request_id is then the createFeed call's")
    feed_message_id: int | None = Field(None, description="the item's messageId in that feed")


class Items(BaseModel):
    summary: Counts
    items: list[Item]
    next_cursor: str | None
    run_id: str | None = None


class ItemWithHistory(Item):
    history: list[dict[str, Any]]
    other_items: list[dict[str, Any]] = []


class SupportCase(BaseModel):
    api: str
    api_version: str
    operation: str = Field(description="the SP-API operations of the submissions, e.g. putListingsItem")
    endpoints: list[tuple[str, str | None]] = Field(
        [], description="(sandbox | production, the region's default host) of the submissions")
    reference: str | None
    run_id: str | None
    marketplace_id: str | None
    country: str | None
    marketplaces: list[dict[str, Any]]
    request_ids: list[str]
    submission_ids: list[str]
    feed_ids: list[str] = Field([], description="feedIds of the JSON_LISTINGS_FEEDs the items were sent in")
    submissions: list[dict[str, Any]]
    text: str


def _json(data: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status_code, media_type="application/json")


def _validation_text(error: dict) -> str:
    """One of FastAPI's validation errors as text: `limit: Input should be greater than or equal to 1`."""
    where = [str(part) for part in error.get("loc", ()) if part not in ("query", "path", "body")]
    return f"{'.'.join(where)}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid"))


# Module level, not inside create_app: FastAPI resolves the Annotated dependency by name in the module.
def item_filters(
    reference: str | None = Query(None, description="matches any part of the reference, case-insensitive "
                                  "(Unicode)"),
    status: str = Query("all", description="all | error | pending | finished"),
    type: str | None = Query(None, description="category | product | variant"),
    since: str | None = Query(None, description="ISO-8601: items synced at or after it, across runs"),
    run_id: str | None = Query(None, description="default: the last run; 'all': every run; an unknown run: 404"),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
) -> ItemFilters:
    return ItemFilters(reference=reference or None, status=status or "all", item_type=type or None,
                       since=since or None, run_id=run_id or None, cursor=cursor or None)


def create_app(model: ReadModel, *, api_token: str | None = None,
               registry: CollectorRegistry | None = None) -> FastAPI:
    """`registry`: where the app's metrics live (a fresh one by default: one app, one registry)."""
    # /docs and /redoc load Swagger UI and ReDoc from assets fastapi-offline ships, not from a CDN:
    # the docs work on a machine without Internet access.
    app: FastAPI = FastAPIOffline(
        title="catalog-sync read API",
        version="1",
        description="Sync runs and item statuses recorded from the catalog-sync pipeline (interfaces.md §5). "
                    'Every error answers {"detail": "..."}.',
        static_url="/docs-assets",
    )
    registry = registry if registry is not None else CollectorRegistry()
    metrics = ApiMetrics(registry, model)
    ProcessCollector(registry=registry)
    app.add_middleware(metrics.middleware)

    def authorised(request: Request) -> None:
        if not api_token:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), api_token.encode()):
            raise HTTPException(401, "a valid bearer token is required (API_TOKEN)",
                                headers={"WWW-Authenticate": "Bearer"})

    guard = [Depends(authorised)]

    @app.exception_handler(BadQuery)
    def bad_query(_request: Request, exc: BadQuery) -> Response:
        return _json({"detail": str(exc)}, 400)

    @app.exception_handler(RequestValidationError)
    def invalid_parameter(_request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's default is a 422 with a list; a bad parameter is a 400 with one text like the others.
        return _json({"detail": "; ".join(_validation_text(e) for e in exc.errors())}, 400)

    @app.exception_handler(NotFound)
    def not_found(_request: Request, exc: NotFound) -> Response:
        return _json({"detail": str(exc)}, 404)

    @app.exception_handler(Exception)
    def internal_error(_request: Request, _exc: Exception) -> Response:
        # Same shape as every other error; the server still logs the exception with its traceback.
        return _json({"detail": "internal error (the API's log has the cause)"}, 500)

    @app.exception_handler(StoreUnavailable)
    def unavailable(_request: Request, exc: StoreUnavailable) -> Response:
        return _json({"detail": "the read store is unavailable; retry shortly"}, 503)

    @app.get("/api/activity", response_model=Activity, dependencies=guard,
             summary="Is a sync running, the last and the next run")
    def activity() -> Response:
        return _json(model.activity())

    @app.get("/api/runs", response_model=Runs, dependencies=guard, summary="Runs, newest first")
    def runs(limit: int = Query(20, ge=1, le=500)) -> Response:
        return _json(model.runs(limit))

    @app.get("/api/runs/{run_id}", response_model=Run, dependencies=guard, summary="One run (404 when unknown)")
    def run(run_id: str) -> Response:
        return _json(model.run(run_id))

    @app.get("/api/items", response_model=Items, dependencies=guard,
             summary="Item statuses with filters, a summary of the whole filtered set and cursor pagination")
    def items(filters: Annotated[ItemFilters, Depends(item_filters)],
              limit: int = Query(DEFAULT_PAGE, ge=1, le=MAX_PAGE)) -> Response:
        return _json(model.items(replace(filters, limit=limit)))

    @app.get("/api/items.csv", dependencies=guard, response_class=StreamingResponse,
             summary="Every item the filters select, as CSV (same filters as /api/items; no page limit)",
             responses={200: {"content": {"text/csv": {}}}})
    def items_csv(filters: Annotated[ItemFilters, Depends(item_filters)]) -> StreamingResponse:
        rows = model.export_items(filters)  # raises 400/404 here, before the answer starts
        return StreamingResponse(csv_chunks(rows), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": 'attachment; filename="catalog-sync-items.csv"'})

    @app.get("/api/items/{reference:path}", response_model=ItemWithHistory, dependencies=guard,
             summary="One item and every event of it, oldest first")
    def item(reference: str, marketplace_id: str | None = None, seller_id: str | None = None) -> Response:
        found = model.item(reference, marketplace_id or None, seller_id or None)
        if found is None:
            raise HTTPException(404, f"no item with reference {reference!r}")
        return _json(found)

    @app.get("/api/support-case", response_model=SupportCase, dependencies=guard,
             summary="What to paste into an Amazon support case")
    def support_case(reference: str | None = None, marketplace_id: str | None = None,
                     seller_id: str | None = None, run_id: str | None = None,
                     item: Annotated[list[str] | None, Query(
                         description="item keys seller_id|marketplace_id|reference (repeat for several items)")] = None,
                     limit: int = Query(50, ge=1, le=500)) -> Response:
        case = model.support_case(reference=reference or None, marketplace_id=marketplace_id or None,
                                  seller_id=seller_id or None, run_id=run_id or None,
                                  items=[i for i in item or () if i], limit=limit)
        if case is None:
            raise HTTPException(404, "nothing recorded for that reference or run")
        return _json(case)

    # Unguarded like /healthz: Prometheus scrapes without the token (deploy/prometheus/prometheus.yml).
    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        with model.store.read() as s:
            s.execute("SELECT 1")
        return _json({"ok": True})

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Content-Security-Policy": PAGE_CSP,
                                                                "X-Content-Type-Options": "nosniff",
                                                                "Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def app_from_env() -> FastAPI:
    """`uvicorn --factory catalog_sync.recorder.api:app_from_env`: the app configured from the environment."""
    from .read_model import ReadModel
    from .service import open_store
    from .settings import RecorderSettings

    settings = RecorderSettings.from_env()
    return create_app(ReadModel(open_store(settings), stall_seconds=settings.stall_seconds),
                      api_token=settings.api_token)
