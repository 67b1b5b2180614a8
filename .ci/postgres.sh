#!/usr/bin/env bash
# Installs Debian's PostgreSQL when it is missing, starts a cluster on 127.0.0.1:5432 and makes the
# test role and database the suite expects (TEST_POSTGRES_URL's default:
# postgresql://catalog_sync:catalog_sync@127.0.0.1:5432/test). Idempotent: reuses what is there.
# Called by .ci/run; developers can run it too (needs root for apt-get and for the postgres user).
set -euo pipefail

if ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "postgres: PostgreSQL is not installed; run as root to install Debian's postgresql" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq -o DPkg::Lock::Timeout=300
    apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 postgresql >/dev/null
fi

version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q .; then
    pg_createcluster --port 5432 "$version" main >/dev/null
fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi
for _ in $(seq 1 60); do
    pg_isready -h 127.0.0.1 -p 5432 -q && break
    sleep 0.5  # waiting for a server we started, not synchronising a test
done
pg_isready -h 127.0.0.1 -p 5432

as_postgres() { runuser -u postgres -- psql -p 5432 -v ON_ERROR_STOP=1 -qtAc "$1"; }
if [ "$(as_postgres "SELECT 1 FROM pg_roles WHERE rolname = 'catalog_sync'")" != "1" ]; then
    as_postgres "CREATE ROLE catalog_sync LOGIN PASSWORD 'catalog_sync'"
fi
if [ "$(as_postgres "SELECT 1 FROM pg_database WHERE datname = 'test'")" != "1" ]; then
    as_postgres "CREATE DATABASE test OWNER catalog_sync"
fi
as_postgres "ALTER DATABASE test OWNER TO catalog_sync"  # a database made earlier by hand
echo "postgres: PostgreSQL $version answers on 127.0.0.1:5432 (database test, role catalog_sync)"
