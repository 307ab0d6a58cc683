#!/usr/bin/env bash
# Start the two servers the tests share: PostgreSQL on 127.0.0.1:5432 (a Debian cluster, loopback only,
# the `postgres` role trusted from loopback) and redis-server on 127.0.0.1:6379 (no persistence).
# Tests that stop, fill or reconfigure a server start their own private instance instead.
# Idempotent: a server that already answers is left alone; nothing here stops anything.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
PG_PORT=5432
REDIS_PORT=6379
MARK="# honeydue-exporter tests (scripts/services.sh)"

wait_until() {  # wait_until SECONDS COMMAND...: poll until the command succeeds or the deadline passes
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.2
  done
}

pg_answers() { psql "host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres connect_timeout=3" -Atqc 'SELECT 1'; }

# The Debian cluster that owns the port, "VERSION NAME", or nothing.
pg_cluster() { pg_lsclusters --no-header 2>/dev/null | awk -v port="$PG_PORT" '$3 == port { print $1, $2; exit }'; }

pg_configure() {  # VERSION NAME: loopback-only access for the tests; returns 0 when a file changed
  local conf="/etc/postgresql/$1/$2" changed=1
  if ! grep -qF "$MARK" "$conf/pg_hba.conf"; then
    # First matching line wins: trust the postgres role from loopback, keep the cluster's other lines
    # (other roles still authenticate with their passwords, as the least-privilege tests expect).
    { printf '%s\nhost all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust\n\n' "$MARK"
      cat "$conf/pg_hba.conf"; } > "$conf/pg_hba.conf.new"
    chown --reference="$conf/pg_hba.conf" "$conf/pg_hba.conf.new"
    chmod --reference="$conf/pg_hba.conf" "$conf/pg_hba.conf.new"
    mv "$conf/pg_hba.conf.new" "$conf/pg_hba.conf"
    changed=0
  fi
  mkdir -p "$conf/conf.d"
  local settings
  settings=$(printf '%s\nlisten_addresses = '"'"'127.0.0.1,::1'"'"'\nport = %s\n%s\n' "$MARK" "$PG_PORT" \
    "# a throw-away test cluster: durability buys nothing here
fsync = off
synchronous_commit = off
full_page_writes = off")
  if [ "$(cat "$conf/conf.d/honeydue-tests.conf" 2>/dev/null)" != "$settings" ]; then
    printf '%s\n' "$settings" > "$conf/conf.d/honeydue-tests.conf"
    changed=0
  fi
  return $changed
}

start_postgres() {
  if pg_answers >/dev/null 2>&1; then
    echo "services: PostgreSQL answers on 127.0.0.1:$PG_PORT"
    return 0
  fi
  local cluster version name
  cluster=$(pg_cluster)
  if [ -z "$cluster" ]; then
    version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n1)
    [ -n "$version" ] || { echo "services: no PostgreSQL server installed (apt-get install postgresql)" >&2; exit 1; }
    name=main
    pg_lsclusters --no-header | awk '{ print $1, $2 }' | grep -qx "$version main" && name=honeydue-tests
    echo "services: creating PostgreSQL cluster $version/$name on port $PG_PORT"
    pg_createcluster --port "$PG_PORT" "$version" "$name" >/dev/null
    cluster="$version $name"
  fi
  read -r version name <<<"$cluster"
  if pg_configure "$version" "$name"; then
    echo "services: PostgreSQL $version/$name configured for loopback test access"
  fi
  if pg_ctlcluster "$version" "$name" status >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$version" "$name" restart
  else
    echo "services: starting PostgreSQL $version/$name"
    pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start
  fi
  if ! wait_until 30 pg_answers; then
    echo "services: PostgreSQL $version/$name does not answer on 127.0.0.1:$PG_PORT as postgres:" >&2
    pg_answers >&2 || true
    exit 1
  fi
}

redis_answers() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

start_redis() {
  if redis_answers; then
    echo "services: Redis answers on 127.0.0.1:$REDIS_PORT"
    return 0
  fi
  if ss -Hltn "sport = :$REDIS_PORT" | grep -q .; then
    echo "services: something that is not Redis listens on 127.0.0.1:$REDIS_PORT; stop it or free the port" >&2
    exit 1
  fi
  local dir=/var/tmp/honeydue-redis
  mkdir -p "$dir"
  echo "services: starting redis-server on 127.0.0.1:$REDIS_PORT (no persistence)"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$dir" --logfile "$dir/redis.log" --pidfile "$dir/redis.pid"
  wait_until 15 redis_answers || { echo "services: redis-server did not answer; see $dir/redis.log" >&2; exit 1; }
}

start_postgres
start_redis
