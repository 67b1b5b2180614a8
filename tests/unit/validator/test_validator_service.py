"""The worker's batch handler: events out, metrics on the registry passed in."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry
from validator_fixtures import change, complete_hairband

from catalog_sync.runtime.config import ConfigError
from catalog_sync.runtime.consumer_loop import Incoming, Outgoing
from catalog_sync.validator.metrics import ValidatorMetrics
from catalog_sync.validator.service import ValidatorBatchHandler, build_schemas
from catalog_sync.validator.settings import ValidatorSettings
from catalog_sync.validator.validation import ItemValidator


def incoming(offset, attributes):
    event = {"event_id": f"e-{offset}", "event_time": datetime(2026, 11, 27, tzinfo=UTC), "run_id": None,
             "mode": "production", **change(attributes, reference=f"HB-{offset}")}
    return Incoming("catalog.item.changed", 0, offset, None, "CatalogItemChanged", event)


def test_batch_outputs_and_metrics():
    registry = CollectorRegistry()
    validator = ItemValidator(build_schemas(ValidatorSettings()))
    handler = ValidatorBatchHandler(validator, None, ValidatorMetrics(registry))
    broken = complete_hairband()
    del broken["brand"], broken["item_name"]
    out = handler([incoming(1, complete_hairband()), incoming(2, broken), incoming(3, complete_hairband())])
    assert [o.schema for o in out] == ["ListingReady", "ValidationFailed", "ListingReady"]
    assert all(isinstance(o, Outgoing) for o in out)
    value = registry.get_sample_value
    assert value("validator_events_total", {"outcome": "ready"}) == 2
    assert value("validator_events_total", {"outcome": "invalid"}) == 1
    assert value("validator_errors_total", {"code": "schema.required"}) == 2
    assert value("validator_validation_duration_seconds_count") == 3


def test_settings_from_the_environment(tmp_path):
    settings = ValidatorSettings.from_env({"PRODUCT_TYPES_DIR": str(tmp_path), "SELLER_ID": "A1"})
    assert settings.product_types_dir == tmp_path and settings.default_seller_id == "A1"
    (tmp_path / "ONE.json").write_text(json.dumps({"type": "object"}))
    schemas = build_schemas(settings)
    assert schemas.get("ONE", "ATVPDKIKX0DER").compiled.name == "ONE"


def test_bad_settings_fail_with_the_variable_named(tmp_path):

    with pytest.raises(ConfigError, match="PRODUCT_TYPES_DIR"):
        ValidatorSettings.from_env({"PRODUCT_TYPES_DIR": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match="LWA_REFRESH_TOKEN"):
        ValidatorSettings.from_env({"PRODUCT_TYPES_SOURCE": "amazon", "LWA_CLIENT_ID": "x", "LWA_CLIENT_SECRET": "y"})
