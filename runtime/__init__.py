"""The one shared library of catalog-sync: configuration, Kafka bus, Avro codec, worker loop,
dead letters, metrics, logs, the embedded development broker and test helpers."""
