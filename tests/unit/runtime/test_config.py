import pytest

from catalog_sync.runtime.config import ConfigError, RuntimeSettings, mask_secrets


def test_defaults_run_locally():
    settings = RuntimeSettings.from_env("validator", {})
    assert settings.kafka_bootstrap_servers == "localhost:9092"
    assert settings.kafka_api_version is None
    assert settings.group_id == "validator"
    assert settings.metrics_port == 9101


def test_api_version_and_prefix():
    settings = RuntimeSettings.from_env("recorder", {"KAFKA_API_VERSION": "2.3", "TOPIC_PREFIX": "t1."})
    assert settings.kafka_api_version == (2, 3)
    assert settings.topic("listing.ready") == "t1.listing.ready"
    assert settings.group_id == "t1.recorder"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KAFKA_API_VERSION": "two"}, "KAFKA_API_VERSION='two' is not a version like 2.3"),
        ({"METRICS_PORT": "abc"}, "METRICS_PORT='abc' is not an integer"),
        ({"KAFKA_MAX_POLL_RECORDS": "0"}, "KAFKA_MAX_POLL_RECORDS=0 must be at least 1"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT='xml' must be one of auto, json, console"),
        ({"KAFKA_SESSION_TIMEOUT_MS": "5000", "KAFKA_HEARTBEAT_INTERVAL_MS": "6000"}, "must be lower"),
    ],
)
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        RuntimeSettings.from_env("validator", env)


def test_metrics_can_be_switched_off():
    assert RuntimeSettings.from_env("validator", {"METRICS_PORT": "off"}).metrics_port is None


def test_masking_hides_secrets_and_url_passwords():
    masked = mask_secrets({"lwa_client_secret": "s3cr3t", "read_store_url": "postgresql://u:pw@db/x",
                           "api_token": "", "service": "api"})
    assert masked["lwa_client_secret"] == "***"
    assert masked["read_store_url"] == "postgresql://u:***@db/x"
    assert masked["service"] == "api"
