"""The one shared library of catalog-sync: configuration, Kafka bus, Avro codec, consumer loop,
dead letters, metrics, logs, the contract and the local development brokers."""

from importlib.metadata import PackageNotFoundError, version

try:
    # Every distribution of catalog-sync is released under one version (tests/deploy/test_deploy_wheel.py).
    __version__ = version("catalog-sync-runtime")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
