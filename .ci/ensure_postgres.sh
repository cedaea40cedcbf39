#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 and print a URL for the tests.
# Starts the machine's own cluster if it has one, else installs Debian's `postgresql`.
# Everything but the URL goes to stderr.
set -euo pipefail
exec 3>&1 1>&2

ready() { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; }

if ! ready; then
    if ! ls -d /etc/postgresql/*/main >/dev/null 2>&1; then
        echo "ensure_postgres: installing Debian's postgresql"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    echo "ensure_postgres: starting cluster $version/main"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 60); do ready && break; sleep 0.5; done
    ready || { echo "ensure_postgres: PostgreSQL did not start"; exit 1; }
fi

url="postgresql://postgres@127.0.0.1:5432/postgres"
if ! psql "$url" -qAtc "SELECT 1" >/dev/null 2>&1; then
    # A fresh Debian cluster wants a password over TCP: give the postgres role one.
    su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
    url="postgresql://postgres:postgres@127.0.0.1:5432/postgres"
    psql "$url" -qAtc "SELECT 1" >/dev/null
fi
echo "$url" >&3
