"""The embedded development broker: librdkafka's mock cluster (from the confluent-kafka wheel).

It speaks the real Kafka protocol on loopback, lives in memory and dies with the process that
holds it. Topics auto-create with 4 partitions; CreateTopics is not supported; kafka-python must
pin api_version (2, 3) against it (EMBEDDED_API_VERSION).
"""

from __future__ import annotations

EMBEDDED_API_VERSION = "2.3"


class EmbeddedBroker:
    def __init__(self, num_brokers: int = 1):
        from confluent_kafka import Producer  # imported here: only dev and test use it

        # The holder owns the mock cluster; keep it alive as long as the broker is needed.
        self._holder: Producer | None = Producer({"test.mock.num.brokers": num_brokers, "log_level": 0})
        metadata = self._holder.list_topics(timeout=10)
        self.bootstrap_servers = ",".join(f"{b.host}:{b.port}" for b in metadata.brokers.values())
        self.api_version = EMBEDDED_API_VERSION

    def env(self) -> dict[str, str]:
        """Environment for a worker process that should use this broker."""
        return {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers, "KAFKA_API_VERSION": self.api_version}

    def close(self) -> None:
        holder, self._holder = self._holder, None
        if holder is not None:
            holder.flush(1)
            del holder

    def __enter__(self) -> EmbeddedBroker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
