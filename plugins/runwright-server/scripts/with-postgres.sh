#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL cluster (Debian packages, temp dir, 127.0.0.1).
#
#   plugins/runwright-server/scripts/with-postgres.sh pytest plugins/runwright-server/tests plugins/runwright-cloud/tests
#
# Exports RUNWRIGHT_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:PORT/postgres
# for CMD, then stops the cluster and deletes its directory, whatever CMD's outcome; exits
# with CMD's exit code. Installs PostgreSQL with apt-get when no /usr/lib/postgresql/*/bin
# exists. fsync is off: test data only. Set PGPORT_FOR_TESTS to choose the port.
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
    echo "with-postgres: installing PostgreSQL from Debian packages" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

PORT=${PGPORT_FOR_TESTS:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
PGTMP=$(mktemp -d /tmp/rw-pg.XXXXXX)
if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$PGTMP"
    AS=(runuser -u postgres --)   # initdb refuses to run as root
else
    AS=()
fi

cleanup() {
    "${AS[@]}" "$PGBIN/pg_ctl" -D "$PGTMP/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$PGTMP"
}
trap cleanup EXIT

"${AS[@]}" "$PGBIN/initdb" -D "$PGTMP/data" -U postgres --auth=trust -E UTF8 --no-sync >"$PGTMP/initdb.log" 2>&1 \
    || { cat "$PGTMP/initdb.log" >&2; exit 1; }
"${AS[@]}" "$PGBIN/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/server.log" -w \
    -o "-k $PGTMP -h 127.0.0.1 -p $PORT -F -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null || { cat "$PGTMP/server.log" >&2; exit 1; }

export RUNWRIGHT_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
echo "with-postgres: $("$PGBIN/postgres" --version) on 127.0.0.1:$PORT" >&2
set +e
"$@"
status=$?
set -e
exit $status
