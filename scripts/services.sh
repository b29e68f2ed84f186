#!/usr/bin/env bash
# Starts the local services the tests use, if they are down: PostgreSQL on 127.0.0.1:5432.
# (The Kafka-compatible broker is started by the tests themselves.)
set -euo pipefail
if command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432; then
    exit 0
fi
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "PostgreSQL is not running on 127.0.0.1:5432 and pg_ctlcluster is not installed;" >&2
    echo "install it (apt-get install postgresql) or point MONITOR_TEST_POSTGRES_URL at a server" >&2
    exit 1
fi
echo "starting PostgreSQL"
pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && exit 0
    sleep 1
done
echo "PostgreSQL did not come up on 127.0.0.1:5432 within 30 s" >&2
exit 1
