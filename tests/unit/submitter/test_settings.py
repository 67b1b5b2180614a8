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
