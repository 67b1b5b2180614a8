"""The one definition of the topics (catalog_sync.runtime.topics) and the plan `topics create` builds from it."""

import pytest

from catalog_sync.runtime import topics


def test_the_plan_has_every_topic_the_code_uses_with_its_prefix_partitions_and_settings():
    plan = topics.topic_plan(prefix="t1.", partitions=7, min_insync_replicas=2)
    names = {*topics.ALL_EVENT_TOPICS, topics.LISTING_ACCEPTED_HASHES, topics.LISTING_FEEDS_INFLIGHT,
             *(topics.dead_letter_topic(s) for s in topics.WORKER_SERVICES)}
    assert set(plan) == {f"t1.{n}" for n in names}
    assert plan["t1.listing.ready"][0] == 7 and plan["t1.catalog.run.events"][0] == 3
    assert plan["t1.listing.accepted.hashes"][1] == {"cleanup.policy": "compact", "min.insync.replicas": "2"}
    assert plan["t1.validator.dlq"][1]["retention.ms"] == str(14 * 24 * 3600 * 1000)
    assert all(configs["min.insync.replicas"] == "2" for _, configs in plan.values())
    assert "min.insync.replicas" not in topics.topic_plan()["listing.ready"][1]  # the cluster's setting then


def test_only_the_submitters_tables_are_compacted():
    assert [t.name for t in topics.TOPICS if t.compacted] == [topics.LISTING_ACCEPTED_HASHES,
                                                              topics.LISTING_FEEDS_INFLIGHT]


def test_a_plan_needs_partitions():
    with pytest.raises(ValueError):
        topics.topic_plan(partitions=0)
