"""Wiring: schema sources, the domain core and the runtime's worker loop. The only validator
module that knows about Kafka (through the runtime) and about HTTP (through the Amazon source)."""

from __future__ import annotations

import time

import structlog
from prometheus_client import CollectorRegistry

from catalog_sync.runtime.batch_strategy import BatchStrategy
from catalog_sync.runtime.bus import require_topics
from catalog_sync.runtime.config import RuntimeSettings
from catalog_sync.runtime.consumer_loop import ConsumerLoop, Incoming, Outgoing, StopSignal
from catalog_sync.runtime.topics import CATALOG_ITEM_CHANGED, WORKER_TOPICS

from .families import FailedParents
from .handler import handle_change
from .metrics import ValidatorMetrics
from .product_type import CompiledProductType
from .schema_sources import DirectorySource, ProductTypeSchemas, SchemaSource, bundled_product_types_dir
from .settings import ValidatorSettings
from .validation import ItemValidator

log = structlog.get_logger()
SERVICE = "validator"


def build_schemas(settings: ValidatorSettings) -> ProductTypeSchemas:
    sources: list[SchemaSource] = []
    if settings.product_types_dir is not None:
        sources.append(DirectorySource(settings.product_types_dir))
    elif settings.product_types_source == "local":
        sources.append(DirectorySource(bundled_product_types_dir()))
    if settings.product_types_source == "amazon":
        sources.append(_amazon_source(settings))
    return ProductTypeSchemas(sources, on_compiled=_log_compiled)


def _amazon_source(settings: ValidatorSettings) -> SchemaSource:
    import httpx

    from .amazon_definitions import AmazonDefinitionsSource, LwaTokens

    client = httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0))
    tokens = LwaTokens(client, token_url=settings.lwa_token_url, client_id=settings.lwa_client_id or "",
                       client_secret=settings.lwa_client_secret or "", refresh_token=settings.lwa_refresh_token or "")
    return AmazonDefinitionsSource(client, tokens, settings.product_types_cache_dir, endpoint=settings.spapi_endpoint,
                                   max_age_s=settings.product_types_max_age_s)


def _log_compiled(compiled: CompiledProductType) -> None:
    log.info("product type schema compiled", product_type=compiled.name, origin=compiled.origin,
             attributes=len(compiled.attribute_names))
    if compiled.unchecked_keywords:
        log.warning("Amazon keywords under conditional branches are not checked locally",
                    product_type=compiled.name, locations=list(compiled.unchecked_keywords)[:20])


class ValidatorBatchHandler:
    """The worker loop's batch handler: the pure core per change, plus metrics and one log line per
    rejected item (accepted ones log at debug: 5,000 lines a second help nobody)."""

    def __init__(self, validator: ItemValidator, default_seller_id: str | None, metrics: ValidatorMetrics):
        self._validator = validator
        self._default_seller_id = default_seller_id
        self._metrics = metrics
        self._failed_parents = FailedParents()

    def __call__(self, batch: list[Incoming]) -> list[Outgoing]:
        out: list[Outgoing] = []
        metrics = self._metrics
        for message in batch:
            started = time.perf_counter()
            emissions = handle_change(message.event, validator=self._validator,
                                      default_seller_id=self._default_seller_id, failed_parents=self._failed_parents)
            metrics.duration.observe(time.perf_counter() - started)
            for emission in emissions:
                if emission.schema == "ValidationFailed":
                    metrics.invalid.inc()
                    codes = [e["code"] for e in emission.event["errors"]]
                    for code in codes:
                        metrics.errors.labels(code).inc()
                    log.info("item invalid", topic=message.topic, partition=message.partition, offset=message.offset,
                             event_id=message.event.get("event_id"), run_id=message.event.get("run_id"),
                             reference=message.event.get("reference"), errors=len(codes),
                             codes=sorted(set(codes)))
                else:
                    metrics.ready.inc()
                    log.debug("item ready", offset=message.offset, reference=message.event.get("reference"))
                out.append(Outgoing(emission.topic, emission.key, emission.schema, emission.event))
        return out


def build_worker(runtime: RuntimeSettings, settings: ValidatorSettings, *,
                 registry: CollectorRegistry | None = None, stop: StopSignal | None = None) -> ConsumerLoop:
    registry = registry or CollectorRegistry()
    handler = ValidatorBatchHandler(ItemValidator(build_schemas(settings)), settings.default_seller_id,
                                    ValidatorMetrics(registry))
    return ConsumerLoop(runtime, topics=[CATALOG_ITEM_CHANGED], strategy=BatchStrategy(handler),
                        accepts=["CatalogItemChanged"], registry=registry, stop=stop)


def run(runtime: RuntimeSettings, settings: ValidatorSettings) -> None:
    require_topics(runtime, [runtime.topic(t) for t in WORKER_TOPICS[SERVICE]])
    build_worker(runtime, settings).run()
