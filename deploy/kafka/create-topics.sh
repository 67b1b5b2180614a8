#!/bin/sh
# Creates catalog-sync's topics when missing, as `catalog-sync topics create` does from runtime/topics.py
# (tests/deploy compares them; idempotent: --if-not-exists; existing topics are left as they are,
# partition counts included). Runs in the official apache/kafka image, in docker compose
# (service kafka-topics) and as the Kubernetes Job in deploy/k8s/topics.yaml (same script, kept equal by
# tests/deploy). A worker scales up to the partition count of its input topic: choose PARTITIONS for
# the largest replica count you plan (KEDA's maxReplicaCount in deploy/k8s uses 12).
#
# Environment:
#   KAFKA_BOOTSTRAP_SERVERS  required, e.g. kafka:9092
#   PARTITIONS               partitions of the item-keyed and seller-keyed topics (default 12)
#   REPLICATION_FACTOR       default 1 (single broker); use 3 on a production cluster
#   MIN_INSYNC_REPLICAS      replicas a record must reach (acks=all); default 2 when REPLICATION_FACTOR >= 3
#   TOPIC_PREFIX             same value as the workers' TOPIC_PREFIX (default none)
#   KAFKA_COMMAND_CONFIG     optional client properties file (TLS/SASL) for kafka-topics.sh
#   KAFKA_TOPICS             path of kafka-topics.sh (default /opt/kafka/bin/kafka-topics.sh)
set -eu

: "${KAFKA_BOOTSTRAP_SERVERS:?set KAFKA_BOOTSTRAP_SERVERS}"
PARTITIONS="${PARTITIONS:-12}"
REPLICATION_FACTOR="${REPLICATION_FACTOR:-1}"
if [ "$REPLICATION_FACTOR" -ge 3 ]; then MIN_INSYNC_REPLICAS="${MIN_INSYNC_REPLICAS:-2}"; fi
TOPIC_PREFIX="${TOPIC_PREFIX:-}"
KAFKA_TOPICS="${KAFKA_TOPICS:-/opt/kafka/bin/kafka-topics.sh}"
DLQ_RETENTION_MS=1209600000   # 14 days to inspect and replay dead letters

topics() {
    if [ -n "${KAFKA_COMMAND_CONFIG:-}" ]; then
        "$KAFKA_TOPICS" --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" --command-config "$KAFKA_COMMAND_CONFIG" "$@"
    else
        "$KAFKA_TOPICS" --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" "$@"
    fi
}

# The broker may still be starting (Kubernetes starts the Job with it): wait up to ~2 minutes.
tries=0
until topics --list >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ]; then
        echo "create-topics: Kafka at $KAFKA_BOOTSTRAP_SERVERS did not answer" >&2
        exit 1
    fi
    sleep 2
done

# create NAME PARTITIONS [--config k=v ...]
create() {
    name="$TOPIC_PREFIX$1"
    partitions="$2"
    shift 2
    if [ -n "${MIN_INSYNC_REPLICAS:-}" ]; then
        set -- "$@" --config "min.insync.replicas=$MIN_INSYNC_REPLICAS"
    fi
    topics --create --if-not-exists --topic "$name" --partitions "$partitions" \
        --replication-factor "$REPLICATION_FACTOR" "$@"
    echo "create-topics: $name ($partitions partitions)"
}

# Item-keyed (seller|marketplace|reference): per-item order, spread over many partitions.
create catalog.item.changed "$PARTITIONS"
create listing.validation.failed "$PARTITIONS"
create listing.submission.completed "$PARTITIONS"
create listing.state.observed "$PARTITIONS"
# Seller-keyed: one submitter owns each seller's rate limit.
create listing.ready "$PARTITIONS"
# Run opened/closed, keyed by run id: a few events per run.
create catalog.run.events 3
# Amazon's listing notifications as JSON, from the user's SQS forwarder; keyed seller|marketplace|sku
# and partitioned like listing.submission.completed, they reach the submitter watching the listing.
create listing.notification.received "$PARTITIONS"
# Submitter state: last accepted content hash per item; only the newest value per key matters.
create listing.accepted.hashes "$PARTITIONS" --config cleanup.policy=compact
# Submitter state: feeds of the bulk lane in flight, resumed by the next owner of a seller.
create listing.feeds.inflight "$PARTITIONS" --config cleanup.policy=compact
# Dead letters: rare, kept long enough to inspect and replay.
create validator.dlq 3 --config "retention.ms=$DLQ_RETENTION_MS"
create submitter.dlq 3 --config "retention.ms=$DLQ_RETENTION_MS"
create recorder.dlq 3 --config "retention.ms=$DLQ_RETENTION_MS"
