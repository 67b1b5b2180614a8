#!/usr/bin/env bash
# Fetches Apache Kafka's jars (deploy/kafka-local/pom.xml) into ~/.cache/catalog-sync/kafka-<version>/lib
# so the suite's real-Kafka tier runs; installs Java 17 and Maven from Debian when missing. Idempotent:
# a cached jar folder is reused, and Maven's own cache (~/.m2, or MAVEN_REPO_LOCAL) downloads each jar once.
# Called by .ci/run before `make test`; developers can run it too (needs root only to install Java/Maven).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "kafka-jars: missing ${need[*]}; run as root to install them with apt-get" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq -o DPkg::Lock::Timeout=300
    apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${need[@]}" >/dev/null
fi

if [ -n "${MAVEN_REPO_LOCAL:-}" ]; then
    export MAVEN_OPTS="${MAVEN_OPTS:-} -Dmaven.repo.local=$MAVEN_REPO_LOCAL"
fi
started=$(date +%s)
make --no-print-directory kafka-jars
echo "kafka-jars: ready in $(( $(date +%s) - started )) s"
