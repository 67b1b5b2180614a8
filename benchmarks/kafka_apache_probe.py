"""What kafka-python (the pinned version) does against real Apache Kafka from deploy/kafka-local:
protocol negotiation, the idempotent producer, transactions. Run by hand, not by `make bench`:

    .venv/bin/python benchmarks/kafka_apache_probe.py [--nodes 1|3] [--output probe.json]

Talks to kafka-python directly (transactions are outside the bus on purpose: the pipeline is
at-least-once), so it stays out of the production packages. Findings go to docs/operations.md.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

import kafka
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient

from catalog_sync.runtime.apache_kafka import ApacheKafkaCluster

RECORDS = 50_000
VALUE = b"x" * 400
TXNS = 200
PER_TXN = 50


def create(bootstrap: str, *topics: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics({t: {"num_partitions": 4, "replication_factor": -1} for t in topics}, wait_for_metadata=True)
    finally:
        admin.close()


def produce_rate(bootstrap: str, topic: str, **config) -> dict:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024, **config)
    started = time.perf_counter()
    futures = [producer.send(topic, key=str(i % 500).encode(), value=VALUE) for i in range(RECORDS)]
    producer.flush()
    elapsed = time.perf_counter() - started
    failed = sum(1 for f in futures if f.failed())
    negotiated = producer.config["api_version"]
    idempotent = producer.config["enable_idempotence"]
    producer.close()
    return {"records": RECORDS, "seconds": round(elapsed, 2), "per_s": round(RECORDS / elapsed), "failed": failed,
            "api_version": ".".join(map(str, negotiated)), "enable_idempotence": idempotent}


def count(bootstrap: str, topic: str, isolation: str, expected_at_least: int, timeout_s: float = 30) -> tuple[int, str]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False, isolation_level=isolation)
    seen, error = 0, ""
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            batches = consumer.poll(timeout_ms=500)
            if not batches and seen >= expected_at_least:
                break
            seen += sum(len(records) for records in batches.values())
    except Exception as exc:  # what fails, reported rather than hidden: this is a probe
        error = f"{type(exc).__name__}: {exc}"
    finally:
        consumer.close()
    return seen, error


def transactions(bootstrap: str, topic: str) -> dict:
    result: dict = {}
    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"probe-{uuid.uuid4().hex[:8]}",
                                 linger_ms=5)
        started = time.perf_counter()
        producer.init_transactions()
        result["init_transactions_s"] = round(time.perf_counter() - started, 3)
        committed = aborted = 0
        started = time.perf_counter()
        for n in range(TXNS):
            producer.begin_transaction()
            for i in range(PER_TXN):
                producer.send(topic, key=f"{n}-{i}".encode(), value=VALUE)
            if n % 4 == 3:
                producer.flush()  # written to the log first, so readers meet aborted batches
                producer.abort_transaction()
                aborted += PER_TXN
            else:
                producer.commit_transaction()
                committed += PER_TXN
        elapsed = time.perf_counter() - started
        producer.close()
        result.update(transactions=TXNS, records_per_transaction=PER_TXN, seconds=round(elapsed, 2),
                      ms_per_transaction=round(1000 * elapsed / TXNS, 1), committed=committed, aborted=aborted)
        result["read_committed"], result["read_committed_error"] = count(bootstrap, topic, "read_committed", committed)
        result["read_uncommitted"], result["read_uncommitted_error"] = count(bootstrap, topic, "read_uncommitted",
                                                                             committed + aborted)
        result["offsets_in_transaction"] = offsets_in_transaction(bootstrap, topic)
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    return result


def offsets_in_transaction(bootstrap: str, source: str) -> dict:
    """Consume → produce → send_offsets_to_transaction → commit: the exactly-once building block."""
    sink = f"{source}.sink"
    create(bootstrap, sink)
    group = f"probe-eos-{uuid.uuid4().hex[:6]}"
    consumer = KafkaConsumer(source, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False, isolation_level="read_committed")
    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"probe-eos-{uuid.uuid4().hex[:6]}")
    producer.init_transactions()
    moved = 0
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            batches = consumer.poll(timeout_ms=1000, max_records=500)
            if not batches:
                if moved:
                    break
                continue
            producer.begin_transaction()
            offsets = {}
            for tp, records in batches.items():
                for r in records:
                    producer.send(sink, key=r.key, value=r.value)
                offsets[tp] = kafka.OffsetAndMetadata(records[-1].offset + 1, "", -1)
                moved += len(records)
            producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
            producer.commit_transaction()
        committed = consumer.committed(next(iter(consumer.assignment())))
        return {"moved": moved, "group_offset_committed": committed is not None}
    except Exception as exc:
        return {"moved": moved, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        consumer.close()
        producer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, choices=(1, 3), default=1)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    results: dict = {"kafka_python": kafka.__version__}
    with ApacheKafkaCluster(args.nodes) as cluster:
        bootstrap = cluster.bootstrap_servers
        results.update(kafka=cluster.version, nodes=args.nodes, started_in_s=round(cluster.started_in_s, 1))
        suffix = uuid.uuid4().hex[:6]
        create(bootstrap, f"probe.idem.{suffix}", f"probe.plain.{suffix}", f"probe.txn.{suffix}")
        results["idempotent"] = produce_rate(bootstrap, f"probe.idem.{suffix}")
        results["not_idempotent"] = produce_rate(bootstrap, f"probe.plain.{suffix}", enable_idempotence=False)
        results["transactions"] = transactions(bootstrap, f"probe.txn.{suffix}")
    text = json.dumps(results, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
