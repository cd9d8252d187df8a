#!/bin/sh
# The entrypoint of the PostgreSQL and Redis stand-ins (docker/stand-in-images.sh): what the
# official images do with the settings docker-compose.yml gives them, and nothing more.
#   stand-in postgres          a cluster in $PGDATA made once from POSTGRES_USER, POSTGRES_PASSWORD
#                              and POSTGRES_DB (password login from other hosts), then postgres
#   stand-in redis [ARGS...]   redis-server ARGS as the redis user, reachable from other hosts
set -eu
what=$1
shift
case "$what" in
  postgres)
    bin=$(ls -d /usr/lib/postgresql/*/bin | tail -n1)
    user=${POSTGRES_USER:-postgres}
    : "${POSTGRES_PASSWORD:?stand-in postgres: set POSTGRES_PASSWORD}"
    mkdir -p "$PGDATA" /run/postgresql
    chown -R postgres:postgres "$PGDATA" /run/postgresql
    chmod 700 "$PGDATA"
    as_postgres="setpriv --reuid=postgres --regid=postgres --init-groups"
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
      pwfile=$(mktemp)
      printf '%s' "$POSTGRES_PASSWORD" > "$pwfile"
      chown postgres "$pwfile"
      $as_postgres "$bin/initdb" -D "$PGDATA" -U "$user" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
      rm -f "$pwfile"
      echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
      # The database, on a server that listens on its socket only (not yet ready to others).
      $as_postgres "$bin/pg_ctl" -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
      $as_postgres "$bin/createdb" -U "$user" "${POSTGRES_DB:-$user}"
      $as_postgres "$bin/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
    fi
    exec $as_postgres "$bin/postgres" -D "$PGDATA" -c listen_addresses='*'
    ;;
  redis)
    [ "${1:-}" = "redis-server" ] && shift
    exec setpriv --reuid=redis --regid=redis --init-groups \
      redis-server --protected-mode no --bind 0.0.0.0 --dir /data "$@"
    ;;
  *)
    echo "stand-in: unknown service $what (postgres or redis)" >&2
    exit 2
    ;;
esac
