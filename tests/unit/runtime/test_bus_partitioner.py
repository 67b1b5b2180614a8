"""The producer's partitioner places every key where kafka-python's default (and the Java client's
murmur2) places it, however many keys it has remembered."""

from __future__ import annotations

import random

from kafka.partitioner.default import DefaultPartitioner
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from catalog_sync.runtime.bus import KeyHashPartitioner, murmur2


class Cluster:
    def __init__(self, partitions: int):
        self._partitions = set(range(partitions))

    def topics(self):
        return {"t"}

    def partitions_for_topic(self, topic):
        return set(self._partitions) if topic == "t" else None

    def available_partitions_for_topic(self, topic):
        return set(self._partitions)


def test_keys_land_on_the_default_partitioners_partition():
    ours, default = KeyHashPartitioner(remembered=50), DefaultPartitioner()
    keys = [f"A{n % 40:05d}SELLER".encode() for n in range(200)] + [f"S|ATVPDKIKX0DER|HB-{n:06d}".encode()
                                                                    for n in range(300)]
    for partitions in (1, 4, 7):
        cluster = Cluster(partitions)
        for key in keys + keys[::-1]:  # remembered, forgotten (past 50 keys) and hashed again
            assert ours.partition("t", None, key, None, None, cluster) == \
                default.partition("t", None, key, None, None, cluster), (key, partitions)
    assert len(ours._hashes) <= 50


def test_records_without_key_go_to_some_partition_and_leave_nothing_remembered():
    cluster, partitioner = Cluster(4), KeyHashPartitioner()
    assert {partitioner.partition("t", None, None, None, None, cluster) for _ in range(50)} <= {0, 1, 2, 3}
    assert partitioner._hashes == {}


def test_murmur2_equals_kafka_pythons_for_every_length_and_byte():
    draw = random.Random(7)
    keys = [bytes(draw.randrange(256) for _ in range(length)) for length in range(0, 70) for _ in range(40)]
    keys += [b"\xff" * n for n in range(12)] + ["A1|ATVPDKIKX0DER|Haarband – “rosé”".encode()]
    for key in keys:
        assert murmur2(key) == kafka_python_murmur2(key), key
