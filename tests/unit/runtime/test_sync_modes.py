"""The mode x operation table: what a run of each sync mode may send to Amazon, and where."""

import itertools

import pytest

from catalog_sync.runtime.sync_modes import (
    METHODS,
    MODES,
    ModeViolation,
    check_request,
    not_sent_message,
    persists,
    recorded_endpoint,
    route,
    route_of_change,
)


def test_every_mode_and_operation_has_one_route():
    for mode, operation in itertools.product(MODES, METHODS):
        assert route(mode, operation).mode == mode


def test_a_preview_run_never_sends_a_delete_and_says_why():
    delete = route_of_change("preview", "delete")
    assert not delete.sent
    assert delete.why == not_sent_message("preview_not_sent")
    assert "nothing was changed" in delete.why


@pytest.mark.parametrize("operation", list(METHODS))
def test_a_test_run_only_ever_reaches_the_sandbox(operation):
    assert route("test", operation).host == "sandbox" and route("test", operation).amazon_mode is None


def test_writes_of_a_preview_run_carry_validation_preview_on_production():
    for operation in ("putListingsItem", "patchListingsItem"):
        assert (route("preview", operation).host, route("preview", operation).amazon_mode) == \
            ("production", "VALIDATION_PREVIEW")


def test_recorded_endpoints_and_what_persists():
    assert [recorded_endpoint(m) for m in MODES] == ["test", "production", "production"]
    assert [persists(m) for m in MODES] == [True, False, True]
    with pytest.raises(ValueError, match="unknown sync mode"):
        recorded_endpoint("staging")


@pytest.mark.parametrize(("mode", "method", "host", "query"), [
    ("preview", "PUT", "production", "marketplaceIds=X&mode=VALIDATION_PREVIEW"),
    ("production", "DELETE", "production", "marketplaceIds=X"),
    ("test", "DELETE", "sandbox", "marketplaceIds=X"),
    ("test", "PUT", "sandbox", "marketplaceIds=X&includedData=issues"),
])
def test_the_guard_lets_what_the_table_allows_through(mode, method, host, query):
    check_request(mode, method, host, query)


@pytest.mark.parametrize(("mode", "method", "host", "query"), [
    ("preview", "DELETE", "production", "marketplaceIds=X"),
    ("preview", "PUT", "production", "marketplaceIds=X"),
    ("preview", "PUT", "production", "marketplaceIds=X&mode=VALIDATION_PREVIEW&mode=VALIDATION_PREVIEW"),
    ("preview", "PUT", "sandbox", "marketplaceIds=X&mode=VALIDATION_PREVIEW"),
    ("test", "PUT", "production", "marketplaceIds=X"),
    ("production", "PUT", "sandbox", "marketplaceIds=X"),
    ("production", "PUT", "unknown (http://elsewhere)", "marketplaceIds=X"),
    ("production", "POST", "production", "marketplaceIds=X"),
    ("staging", "PUT", "production", "marketplaceIds=X"),
])
def test_the_guard_refuses_anything_else(mode, method, host, query):
    with pytest.raises(ModeViolation):
        check_request(mode, method, host, query)
