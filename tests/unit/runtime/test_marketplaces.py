"""The one marketplace table against Amazon's own list (../shared/amazon/marketplaces.csv)."""

import csv
from pathlib import Path

import pytest

from catalog_sync.runtime.marketplaces import (
    MARKETPLACES,
    PRODUCTION_HOSTS,
    SANDBOX_HOSTS,
    UnknownMarketplace,
    describe,
    region_of,
)
from tests.support.requirements import require

AMAZON_LIST = Path(__file__).resolve().parents[3].parent / "shared" / "amazon" / "marketplaces.csv"


@pytest.mark.shared
def test_every_marketplace_amazon_lists_is_known_with_its_region():
    require(AMAZON_LIST.is_file(), f"Amazon's marketplace list is not at {AMAZON_LIST}")
    with AMAZON_LIST.open(newline="") as listed:
        amazon = {row["marketplace_id"]: (row["country_code"], row["region"]) for row in csv.DictReader(listed)}
    assert {m: (v.country_code, v.region) for m, v in MARKETPLACES.items()} == amazon


def test_regions_hosts_and_unknown_ids():
    assert region_of("A1PA6795UKMFR9") == "EU"
    assert PRODUCTION_HOSTS[region_of("A1VC38T7YXB528")] == "https://sellingpartnerapi-fe.amazon.com"
    assert SANDBOX_HOSTS[region_of("ATVPDKIKX0DER")] == "https://sandbox.sellingpartnerapi-na.amazon.com"
    with pytest.raises(UnknownMarketplace):
        region_of("XXXX")
    assert describe("XXXX")["country"] == "unknown marketplace"
