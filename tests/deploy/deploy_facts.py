"""Facts the deploy/ checks share: where the files are and what the contract fixes."""

from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
WORKERS = ("validator", "submitter", "recorder")

# interfaces.md §4: the configuration every deployment must be able to set.
CONTRACT_ENV = (
    "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_API_VERSION", "READ_STORE_URL", "PRODUCT_TYPES_DIR", "SPAPI_ENDPOINT",
    "SPAPI_SANDBOX_ENDPOINT", "LWA_TOKEN_URL", "LWA_CLIENT_ID", "LWA_CLIENT_SECRET", "LWA_REFRESH_TOKEN",
    "SELLER_ID", "SPAPI_ACCOUNTS_FILE", "API_PORT", "METRICS_PORT",
)
# The topic each scaled worker consumes (architecture.md); the recorder reads several.
INPUT_TOPICS = {"validator": "catalog.item.changed", "submitter": "listing.ready"}
