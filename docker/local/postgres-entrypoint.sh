#!/bin/sh
# The official postgres image's entrypoint, for what docker-compose.yml uses: on an empty PGDATA,
# initdb as the postgres user with POSTGRES_USER as the superuser and POSTGRES_PASSWORD (scram
# over the network, trust on the local socket), POSTGRES_INITDB_ARGS, then POSTGRES_DB and
# /docker-entrypoint-initdb.d/* against a temporary server on the socket only (so nothing on the
# network sees a half-initialised database), then `exec` the command as the postgres user.
set -eu

# No command: the server. `docker run IMAGE -c x=y` means `postgres -c x=y`, as in the
# official image.
if [ $# -eq 0 ] || [ "${1#-}" != "$1" ]; then
    set -- postgres "$@"
fi

# As root: own the directories (a fresh named volume is root's), then run this script again as
# postgres. setpriv execs in place, so the server ends up as PID 1 and gets SIGINT directly.
if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 0700 "$PGDATA"
    chmod 3777 /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

init_database() {
    : "${POSTGRES_USER:=postgres}"
    : "${POSTGRES_DB:=$POSTGRES_USER}"
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "postgres-entrypoint: POSTGRES_PASSWORD is not set; refusing to create a cluster" \
            "that anyone on the network could log into" >&2
        exit 1
    fi
    # The password through a file: never on a command line (ps would show it).
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    # POSTGRES_INITDB_ARGS is split into words on purpose (e.g. "-E UTF8 --locale=C").
    # shellcheck disable=SC2086
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" ${POSTGRES_INITDB_ARGS:-}
    rm -f "$pwfile"
    # initdb's defaults trust the local socket and loopback; every other address needs the
    # password (scram-sha-256, PostgreSQL 15's default encryption).
    printf '\nhost all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"

    # The set-up server listens on the socket only.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
    export PGUSER="$POSTGRES_USER" PGPASSWORD="$POSTGRES_PASSWORD"
    if [ "$POSTGRES_DB" != postgres ]; then
        psql -v ON_ERROR_STOP=1 --dbname postgres --set db="$POSTGRES_DB" <<'SQL'
CREATE DATABASE :"db";
SQL
    fi
    run_init_files
    pg_ctl -D "$PGDATA" -m fast -w stop
    unset PGUSER PGPASSWORD
    echo "postgres-entrypoint: initialisation done; starting the server"
}

run_init_files() {
    for f in /docker-entrypoint-initdb.d/*; do
        [ -e "$f" ] || continue  # an empty directory leaves the pattern as is
        case "$f" in
            *.sh)
                # Executable: run it; otherwise source it (the official image does both).
                if [ -x "$f" ]; then
                    echo "postgres-entrypoint: running $f"
                    "$f"
                else
                    echo "postgres-entrypoint: sourcing $f"
                    # shellcheck disable=SC1090
                    . "$f"
                fi
                ;;
            *.sql)
                echo "postgres-entrypoint: running $f"
                psql -v ON_ERROR_STOP=1 --dbname "$POSTGRES_DB" -f "$f"
                ;;
            *) echo "postgres-entrypoint: ignoring $f" ;;
        esac
    done
}

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    init_database
fi

exec "$@"
