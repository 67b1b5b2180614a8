"""The Kafka bus: the ONLY module that imports kafka-python, so the client can be swapped here.

At-least-once by construction: auto-commit is off, consumers hand out raw bytes (decoding happens
in the worker loop so undecodable payloads can be dead-lettered whole), producers report delivery
failures on flush, and callers commit `offset + 1` only after their outputs are flushed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from kafka.producer.future import FutureRecordMetadata
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as _KafkaTopicPartition

from .config import ConfigError, RuntimeSettings

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]


class BusError(RuntimeError):
    """The broker refused or failed an operation (delivery, commit, admin)."""


class DeliveryError(BusError):
    """`flush()` could not confirm every record: `undelivered` holds them (topic, key, value,
    headers) in send order, so a caller that cannot simply redo its work can send them again."""

    def __init__(self, message: str, undelivered: list[tuple]):
        super().__init__(message)
        self.undelivered = undelivered


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


RebalanceCallback = Callable[[list[TopicPartition]], None]
AssignCallback = Callable[[list[TopicPartition]], dict[TopicPartition, int] | None]


class Consumer(Protocol):
    """What the worker loop needs of a consumer group member (BusConsumer; memory_bus for tests)."""

    def poll(self, timeout_ms: int = 500, max_records: int | None = None) -> list[Record]: ...
    def commit(self, offsets: dict[TopicPartition, int]) -> None: ...
    def commit_async(self, offsets: dict[TopicPartition, int]) -> None: ...
    def seek(self, partition: TopicPartition, offset: int) -> None: ...
    def assignment(self) -> set[TopicPartition]: ...
    def pause(self, partitions: Iterable[TopicPartition]) -> None: ...
    def resume(self, partitions: Iterable[TopicPartition]) -> None: ...
    def lag(self) -> dict[TopicPartition, int]: ...
    def close(self) -> None: ...


class Producer(Protocol):
    """What the worker loop needs of a producer: `send` and `flush` raise DeliveryError with the
    records they could not queue or confirm."""

    def send(self, topic: str, key: str | bytes | None, value: bytes | None, headers=None) -> None: ...
    def flush(self, timeout_s: float = 30.0) -> None: ...
    def close(self) -> None: ...


class Bus(Protocol):
    """Where a worker loop gets its consumer and producer: Kafka here, memory_bus in tests."""

    def consumer(self, topics: Iterable[str], *, on_assign: AssignCallback | None = None,
                 on_revoke: RebalanceCallback | None = None, on_lost: RebalanceCallback | None = None) -> Consumer: ...
    def producer(self) -> Producer: ...


def _client_config(settings: RuntimeSettings) -> dict[str, object]:
    config: dict[str, object] = {"bootstrap_servers": settings.kafka_bootstrap_servers.split(","), "client_id": settings.service}
    if settings.kafka_api_version:
        config["api_version"] = settings.kafka_api_version
    return config


class _Listener(ConsumerRebalanceListener):
    def __init__(self, on_assign, on_revoke, consumer_ref, on_lost=None):
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._on_lost = on_lost
        self._consumer_ref = consumer_ref

    def on_partitions_revoked(self, revoked):
        if self._on_revoke:
            self._on_revoke([(tp.topic, tp.partition) for tp in revoked])

    def on_partitions_lost(self, lost):
        # The group already dropped us (session timed out, e.g. the broker was unreachable): the
        # partitions may have a new owner, so nothing can be committed for them any more.
        handler = self._on_lost or self._on_revoke
        if handler:
            handler([(tp.topic, tp.partition) for tp in lost])

    def on_partitions_assigned(self, assigned):
        partitions = [(tp.topic, tp.partition) for tp in assigned]
        if self._on_assign:
            seek_to = self._on_assign(partitions) or {}
            for (topic, partition), offset in seek_to.items():
                self._consumer_ref().seek(_KafkaTopicPartition(topic, partition), offset)


class BusConsumer:
    """A consumer group member handing out raw records in batches."""

    def __init__(
        self,
        settings: RuntimeSettings,
        topics: Iterable[str],
        *,
        group_id: str | None = None,
        on_assign: AssignCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        on_lost: RebalanceCallback | None = None,
    ):
        topics = list(topics)
        # A group that subscribes before its topic exists would only see it at a metadata refresh,
        # and brokers that do not auto-create (as production ones should not) would never make it.
        ensure_topics(settings, topics)
        self._consumer = KafkaConsumer(
            **_client_config(settings),
            group_id=group_id or settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.max_poll_records,
            max_poll_interval_ms=settings.max_poll_interval_ms,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
            allow_auto_create_topics=True,
            # A group that joined before its topic had partitions (auto-creation races the join)
            # sees them at the next metadata refresh: seconds, not kafka-python's 5 minutes.
            metadata_max_age_ms=10_000,
        )
        self._consumer.subscribe(
            topics=topics, listener=_Listener(on_assign, on_revoke, lambda: self._consumer, on_lost)
        )
        self._poll_failures = 0

    def poll(self, timeout_ms: int = 500, max_records: int | None = None) -> list[Record]:
        """A batch of records; empty when none arrived in `timeout_ms` or the broker is unreachable
        (the client reconnects by itself: callers just keep polling)."""
        try:
            batches = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        except KafkaError as exc:
            self._poll_failures += 1
            if self._poll_failures == 1 or self._poll_failures % 20 == 0:
                log.warning("poll failed (%d in a row), retrying: %s", self._poll_failures, exc)
            time.sleep(timeout_ms / 1000)  # what a poll that found nothing would have waited
            return []
        self._poll_failures = 0
        records: list[Record] = []
        for tp_records in batches.values():
            records.extend(
                Record(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp) for r in tp_records
            )
        return records

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit the NEXT offsets to read (last processed + 1)."""
        if not offsets:
            return
        try:
            self._consumer.commit(
                {_KafkaTopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()}
            )
        except KafkaError as exc:
            raise BusError(f"offset commit failed: {exc}") from exc
        except RuntimeError as exc:  # kafka-python refuses blocking calls inside its rebalance callbacks
            raise BusError(f"offset commit not possible here: {exc}") from exc

    def commit_async(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit without waiting for the answer; a failure is logged (the partitions' next owner
        then replays from the previous commit). What rebalance callbacks use: kafka-python 3 runs
        them on its IO thread, where a blocking commit raises, while this one is queued on that
        thread ahead of the JoinGroup that follows the callback, so it is sent, on the
        coordinator's connection, while the member still holds the partitions."""
        if not offsets:
            return
        committing = {_KafkaTopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()}

        def answered(_offsets, result):
            if isinstance(result, Exception):
                log.warning("offset commit at a revoke failed; messages since the last commit may be replayed: %s",
                            result)
        try:
            self._consumer.commit_async(committing, callback=answered)
        except KafkaError as exc:
            log.warning("offset commit at a revoke not sent: %s", exc)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Read `partition` from `offset` next. A partition no longer assigned is left alone: its
        next owner starts from the committed offset."""
        tp = _KafkaTopicPartition(*partition)
        if tp in self._consumer.assignment():
            self._consumer.seek(tp, offset)

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        self._consumer.pause(*(_KafkaTopicPartition(t, p) for t, p in partitions))

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        assigned = self._consumer.assignment()  # resuming one no longer assigned raises in kafka-python
        self._consumer.resume(*(tp for tp in (_KafkaTopicPartition(t, p) for t, p in partitions) if tp in assigned))

    def assignment(self) -> set[TopicPartition]:
        return {(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def lag(self) -> dict[TopicPartition, int]:
        """Messages behind the end of each assigned partition, from the last fetch (no extra request)."""
        lags = {}
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = self._consumer.position(tp, timeout_ms=0)
            except KafkaError:
                continue
            if position is not None:
                lags[(tp.topic, tp.partition)] = max(0, highwater - position)
        return lags

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class TopicReader(BusConsumer):
    """Reads whole topics from their beginning without a consumer group: no group join, no
    commits. For tools, tests and replays that must see everything a topic holds."""

    def __init__(self, settings: RuntimeSettings, topics: Iterable[str], *, timeout_s: float = 30.0):
        self._consumer = KafkaConsumer(
            **_client_config(settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        self._poll_failures = 0
        deadline = time.monotonic() + timeout_s
        partitions = []
        for topic in topics:
            while not (found := self._consumer.partitions_for_topic(topic)):
                if time.monotonic() > deadline:
                    self._consumer.close()
                    raise BusError(f"topic {topic} has no partitions after {timeout_s}s")
                time.sleep(0.1)
            partitions += [_KafkaTopicPartition(topic, p) for p in sorted(found)]
        self._consumer.assign(partitions)
        self._consumer.seek_to_beginning(*partitions)


class BusProducer:
    """Keyed producer; `flush()` raises BusError if any send since the last flush failed. A key
    goes to the partition every Kafka client picks for it (kafka-python's default partitioner:
    murmur2 of the key, as the Java client), so one item's events stay in order whoever produces them."""

    def __init__(self, settings: RuntimeSettings, *, linger_ms: int = 5):
        self._producer = KafkaProducer(
            **_client_config(settings),
            # A record counts as sent once every in-sync replica has it (with the topic's
            # min.insync.replicas, at least two of three), and the broker drops a batch retried
            # after a lost answer (idempotence: explicit, so a conflicting setting raises).
            acks="all",
            enable_idempotence=True,
            # Retries are bounded by time, not by count: a batch waits out a leader failover (a
            # killed broker is noticed after its session timeout, 9 s by default) or a short outage.
            # Not as short as an outage we ride out: when a batch already sent expires, kafka-python's
            # idempotent producer starts over with a new producer id, and with 30 s here it once
            # delivered nothing for minutes after a 30 s broker cut (docs/operations.md).
            delivery_timeout_ms=120_000,
            linger_ms=linger_ms,
            compression_type=settings.kafka_compression,
            batch_size=256 * 1024,
            max_request_size=8 * 1024 * 1024,
        )
        self._settings = settings
        self._topics_known: set[str] = set()
        self._pending: list[tuple[FutureRecordMetadata, tuple]] = []

    def send(self, topic: str, key: str | bytes | None, value: bytes | None, headers=None) -> None:
        if isinstance(key, str):
            key = key.encode("utf-8")
        if topic not in self._topics_known:
            # Created with our partition count rather than a broker's auto-creation default (1 on
            # Apache Kafka), or not at all where auto-creation is off.
            try:
                ensure_topics(self._settings, [topic])
            except BusError as exc:
                raise DeliveryError(f"topic {topic} unavailable: {exc}", [(topic, key, value, headers)]) from exc
            self._topics_known.add(topic)
        try:
            future = self._producer.send(topic, key=key, value=value, headers=headers)
        except KafkaError as exc:  # e.g. no metadata within max_block_ms while the broker is away
            raise DeliveryError(f"send failed: {exc}", [(topic, key, value, headers)]) from exc
        self._pending.append((future, (topic, key, value, headers)))

    def flush(self, timeout_s: float = 30.0) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaError as exc:  # KafkaTimeoutError: the futures below say which records are missing
            log.warning("producer flush did not complete: %s", exc)
        undelivered = [record for future, record in pending if not future.is_done or future.failed()]
        if undelivered:
            failed = next((f.exception for f, _ in pending if f.is_done and f.failed()), None)
            reason = f"delivery failed: {failed}" if failed else f"delivery not confirmed within {timeout_s}s"
            raise DeliveryError(f"{len(undelivered)} of {len(pending)} records: {reason}", undelivered)

    def close(self) -> None:
        self._producer.close(timeout=5)


class KafkaBus:
    """The Bus of every deployed worker: a BusConsumer in the settings' group and a BusProducer."""

    def __init__(self, settings: RuntimeSettings):
        self._settings = settings

    def consumer(self, topics: Iterable[str], *, on_assign: AssignCallback | None = None,
                 on_revoke: RebalanceCallback | None = None, on_lost: RebalanceCallback | None = None) -> BusConsumer:
        return BusConsumer(self._settings, topics, on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)

    def producer(self) -> BusProducer:
        return BusProducer(self._settings)


@contextlib.contextmanager
def _admin(settings: RuntimeSettings, timeout_s: float, *,
           bootstrap_timeout_s: float | None = None) -> Iterator[KafkaAdminClient]:
    """An admin client for one request, closed after it; BusError when no broker answers within
    `bootstrap_timeout_s` (default `timeout_s`, the timeout of each request)."""
    bootstrap_s = timeout_s if bootstrap_timeout_s is None else bootstrap_timeout_s
    try:
        admin = KafkaAdminClient(**_client_config(settings), request_timeout_ms=int(timeout_s * 1000),
                                 bootstrap_timeout_ms=int(bootstrap_s * 1000))
    except KafkaError as exc:
        raise BusError(f"no broker answered at {settings.kafka_bootstrap_servers}: {exc}") from exc
    try:
        yield admin
    finally:
        admin.close()


def ensure_topics(settings: RuntimeSettings, topics: Iterable[str], partitions: int = 4,
                  configs: dict[str, dict[str, str]] | None = None, replication_factor: int = -1) -> None:
    """Create the topics that are missing and wait until each partition has a leader;
    `replication_factor` -1 takes the broker's default.replication.factor. Brokers that cannot (the
    embedded mock cluster has no controller for CreateTopics) fall back to auto-creation on first
    metadata request; a topic that neither way brings raises BusError."""
    names = list(topics)
    configs = configs or {}
    refused: dict[str, object] = {}
    try:
        with _admin(settings, 5.0, bootstrap_timeout_s=10.0) as admin:
            missing = [n for n in names if n not in set(admin.list_topics())]
            if missing:
                result = admin.create_topics(
                    {n: {"num_partitions": partitions, "replication_factor": replication_factor,
                         "configs": configs.get(n, {})} for n in missing},
                    timeout_ms=10_000, raise_errors=False,
                )
                refused = {t["name"]: t["error_message"] or for_code(t["error_code"]).__name__
                           for t in result["topics"] if t["error_code"] not in (0, TopicAlreadyExistsError.errno)}
                admin.wait_for_topics([n for n in missing if n not in refused], timeout_ms=30_000)
        if not refused:
            return
        log.info("CreateTopics refused %s; relying on auto-creation", refused)
    except BusError as exc:  # only _admin raises it here: no broker answered
        log.warning("admin client unavailable (%s); relying on auto-creation", exc)
    except KafkaError as exc:
        log.info("CreateTopics not available (%s); relying on auto-creation", exc)
    # A producer asks for these topics by name (a consumer asks for all topics, which creates
    # nothing), so a broker with auto-creation makes them now rather than at the first send.
    probe = KafkaProducer(**_client_config(settings), max_block_ms=10_000)
    try:
        for name in names:
            try:
                probe.partitions_for(name)
            except KafkaError as exc:
                if name in refused:
                    raise BusError(f"topic {name} could not be created: {refused[name]}") from exc
                log.warning("topic %s not available yet: %s", name, exc)
    finally:
        probe.close(timeout=5)


def cluster_brokers(settings: RuntimeSettings, timeout_s: float = 5.0) -> set[int]:
    """Ids of the brokers the cluster's metadata lists as serving (fenced ones left out), asked
    through `settings.kafka_bootstrap_servers`. BusError when no broker answers in `timeout_s`."""
    with _admin(settings, timeout_s) as admin:
        try:
            cluster = admin.describe_cluster()
        except KafkaError as exc:
            raise BusError(f"DescribeCluster failed: {exc}") from exc
    return {broker["broker_id"] for broker in cluster["brokers"] if not broker.get("is_fenced")}


@dataclass(frozen=True, slots=True)
class PartitionState:
    leader: int  # -1 while the partition has none
    replicas: tuple[int, ...]
    in_sync: tuple[int, ...]


def describe_partitions(settings: RuntimeSettings, topic: str, timeout_s: float = 5.0) -> dict[int, PartitionState]:
    """Leader, replicas and in-sync replicas of each partition of `topic`, from the metadata."""
    with _admin(settings, timeout_s) as admin:
        try:
            (found,) = admin.describe_topics([topic])
        except KafkaError as exc:
            raise BusError(f"metadata of {topic} unavailable: {exc}") from exc
    return {p["partition_index"]: PartitionState(p["leader_id"], tuple(p["replica_nodes"]), tuple(p["isr_nodes"]))
            for p in found["partitions"]}


def end_offsets(settings: RuntimeSettings, topics: Iterable[str], timeout_s: float = 10.0) -> dict[TopicPartition, int]:
    """The log-end offset of every partition of `topics` (how many records each has received)."""
    consumer = KafkaConsumer(**_client_config(settings), group_id=None, enable_auto_commit=False,
                             request_timeout_ms=int(timeout_s * 1000))
    try:
        partitions = [_KafkaTopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        return {(tp.topic, tp.partition): offset for tp, offset in consumer.end_offsets(partitions).items()}
    except KafkaError as exc:
        raise BusError(f"end offsets unavailable: {exc}") from exc
    finally:
        consumer.close()


def group_lag(settings: RuntimeSettings, groups: dict[str, Iterable[str]], timeout_s: float = 10.0) -> dict[str, int]:
    """Records each consumer group has not committed yet on its topics (a group's topic names to
    end offsets minus its committed offsets, summed; a partition never committed counts whole)."""
    with _admin(settings, timeout_s) as admin:
        try:
            committed = {group: admin.list_group_offsets(group).get(group, {}) for group in groups}
        except KafkaError as exc:
            raise BusError(f"committed offsets unavailable: {exc}") from exc
    lags = {}
    for group, topics in groups.items():
        ends = end_offsets(settings, topics, timeout_s)
        done = {(tp.topic, tp.partition): meta.offset for tp, meta in committed[group].items()}
        lags[group] = sum(max(0, end - max(done.get(tp, 0), 0)) for tp, end in ends.items())
    return lags


def create_topics(settings: RuntimeSettings, topics: dict[str, tuple[int, dict[str, str]]], *,
                  replication_factor: int = -1, timeout_s: float = 30.0) -> dict[str, str]:
    """Create the topics (name → (partitions, configs)) that are missing, wait until each has
    leaders, and say for each whether it was "created" or already "exists" (left as it is).
    BusError when the cluster refuses one (e.g. a replication factor above its broker count) or
    cannot create topics at all (the embedded mock)."""
    timeout_ms = int(timeout_s * 1000)
    with _admin(settings, timeout_s) as admin:
        try:
            existing = set(admin.list_topics())
            missing = {name: spec for name, spec in topics.items() if name not in existing}
            refused = {}
            if missing:
                result = admin.create_topics(
                    {name: {"num_partitions": partitions, "replication_factor": replication_factor, "configs": configs}
                     for name, (partitions, configs) in missing.items()},
                    timeout_ms=timeout_ms, raise_errors=False)
                refused = {t["name"]: t["error_message"] or for_code(t["error_code"]).__name__
                           for t in result["topics"] if t["error_code"] not in (0, TopicAlreadyExistsError.errno)}
                if refused:
                    raise BusError("; ".join(f"{name}: {why}" for name, why in sorted(refused.items())))
                admin.wait_for_topics(list(missing), timeout_ms=timeout_ms)
        except KafkaError as exc:
            raise BusError(f"CreateTopics failed: {exc}") from exc
    return {name: "created" if name in missing else "exists" for name in topics}


def missing_topics(settings: RuntimeSettings, topics: Iterable[str], timeout_s: float = 10.0) -> list[str]:
    """Which of `topics` the cluster does not have (asks for the list; creates nothing)."""
    with _admin(settings, timeout_s) as admin:
        try:
            existing = set(admin.list_topics())
        except KafkaError as exc:
            raise BusError(f"listing topics failed: {exc}") from exc
    return [t for t in topics if t not in existing]


class MissingTopics(ConfigError):
    """Topics a worker needs are not on the cluster: workers do not create topics."""


def require_topics(settings: RuntimeSettings, topics: Iterable[str]) -> None:
    """Raise MissingTopics, naming them and how to create them, unless every one of `topics` exists."""
    missing = missing_topics(settings, topics)
    if missing:
        raise MissingTopics(
            f"{len(missing)} topic(s) missing on {settings.kafka_bootstrap_servers}: {', '.join(missing)}. Workers "
            "do not create topics: run `catalog-sync topics create` (or deploy/kafka/create-topics.sh) first")


def topic_configs(settings: RuntimeSettings, topics: Iterable[str], timeout_s: float = 10.0
                  ) -> dict[str, dict[str, str | None]]:
    """The settings each topic has that differ from the broker's defaults (name → {key: value})."""
    from kafka.admin import ConfigResource, ConfigResourceType

    with _admin(settings, timeout_s) as admin:
        try:
            described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics])
        except KafkaError as exc:
            raise BusError(f"DescribeConfigs failed: {exc}") from exc
    if isinstance(described, list):
        described = dict(zip(topics, described, strict=False))
    else:
        described = described.get("topic", {})
    return {name: {key: data.get("value") if isinstance(data, dict) else data for key, data in configs.items()}
            for name, configs in described.items()}
