"""The submitter's HTTP settings from the environment reach its SP-API client; a bad one stops it at start."""

import pytest

from catalog_sync.runtime.config import ConfigError
from catalog_sync.submitter.settings import SubmitterSettings


def test_every_http_timeout_and_the_connection_limit_come_from_the_environment():
    settings = SubmitterSettings.from_env({
        "SPAPI_CONNECT_TIMEOUT_S": "2", "SPAPI_READ_TIMEOUT_S": "20", "SPAPI_WRITE_TIMEOUT_S": "7",
        "SPAPI_POOL_TIMEOUT_S": "15", "SPAPI_MAX_CONNECTIONS": "32"})
    client = settings.client
    assert (client.connect_timeout_s, client.read_timeout_s, client.write_timeout_s, client.pool_timeout_s,
            client.max_connections) == (2.0, 20.0, 7.0, 15.0, 32)
    assert settings.describe()["timeouts_s"] == {"connect": 2.0, "read": 20.0, "write": 7.0, "pool": 15.0}


@pytest.mark.parametrize("name", ["SPAPI_WRITE_TIMEOUT_S", "SPAPI_POOL_TIMEOUT_S"])
@pytest.mark.parametrize("value", ["soon", "0"])
def test_a_bad_timeout_stops_the_submitter_at_start(name, value):
    with pytest.raises(ConfigError, match=name):
        SubmitterSettings.from_env({name: value})


def test_the_bulk_lane_is_on_unless_turned_off_and_takes_its_limits_from_the_environment():
    assert SubmitterSettings.from_env({"SUBMITTER_BULK_LANE": "off"}).bulk is None
    assert SubmitterSettings.from_env({}).bulk.threshold == 300
    settings = SubmitterSettings.from_env({"SUBMITTER_FEED_MAX_MESSAGES": "5000",
                                           "SUBMITTER_FEED_HANDOVER_S": "8", "SPAPI_TIME_SCALE": "20"})
    assert (settings.bulk.threshold, settings.bulk.max_messages, settings.bulk.handover_wait_s,
            settings.time_scale) == (300, 5000, 8.0, 20.0)
    assert settings.describe()["bulk_lane"]["max_messages"] == 5000


@pytest.mark.parametrize(("name", "value"), [("SUBMITTER_FEED_MAX_MESSAGES", "25001"), ("SUBMITTER_BULK_LANE", "yes"),
                                             ("SUBMITTER_FEED_THRESHOLD", "0")])
def test_a_bulk_lane_setting_amazon_would_refuse_stops_the_submitter_at_start(name, value):
    with pytest.raises(ConfigError):
        SubmitterSettings.from_env({"SUBMITTER_BULK_LANE": "on", name: value})
