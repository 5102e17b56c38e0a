#!/usr/bin/env bash
# The whole test suite: formatting, lints, then every test of every crate,
# against the embedded backends and the real services.
#
# 1. scripts/services.sh starts PostgreSQL, MariaDB, Redis, NATS and a Kafka
#    broker (installing them when absent; tansu is built once, about 25
#    minutes) and exports their URLs (MAGPIE_TEST_*_URL); the conformance
#    suites run against every backend with them.
# 2. The whole-server black-box tests (crates/magpie/tests) run four times:
#    embedded, then on PostgreSQL sharded over two servers + Redis +
#    JetStream (one server, one stream), then on MariaDB sharded over two
#    servers + a three-primary Redis Cluster + a three-server NATS cluster
#    with four partition streams of three replicas each
#    (MAGPIE_TEST_BACKENDS=cluster, MAGPIE_TEST_SHARDED=1,
#    MAGPIE_TEST_STORE=mysql, the clusters' URLs, MAGPIE_TEST_BUS_OPTIONS).
#    A fourth run puts the bus on Kafka: PostgreSQL + Redis + a tansu
#    broker of each test's own (four partition topics) with the relay on
#    NATS core (MAGPIE_TEST_BUS=kafka; docs/deploy.md, "Kafka").
# 3. The fuzz targets (frame decoders, access-log parsers) run for a bounded
#    number of inputs each (scripts/fuzz.sh, docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
# The debug build directory (.cargo/config.toml) grows with every run:
# incremental caches and test binaries of earlier builds (a run from a new
# clone adds about 15 GB). Past the cap it is dropped and rebuilt (about 20
# minutes on two cores) rather than left to fill the disk, which stops
# everything on the machine: this machine's disk has about 90 GB to give,
# and a 66 GB directory filled it (2026-12-04).
target=${CARGO_TARGET_DIR:-/var/tmp/magpie-target}
cap_gb=${MAGPIE_TARGET_CAP_GB:-40}
if [ -d "$target/debug" ] && [ "$(du -s --block-size=1G "$target/debug" | cut -f1)" -gt "$cap_gb" ]; then
  echo "test: $target/debug is over $cap_gb GB: removing it" >&2
  rm -rf "$target/debug"
fi
# The exports go through a file, not `$(...)`: a command substitution waits
# until every process holding its pipe exits, so one daemon that kept the
# script's stdout would hang the run before the first test.
env_file=$(mktemp)
scripts/services.sh start >"$env_file"
# shellcheck disable=SC1090
. "$env_file"
rm -f "$env_file"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
cargo test --workspace --all-features --locked --no-fail-fast
MAGPIE_TEST_BACKENDS=cluster MAGPIE_TEST_SHARDED=1 cargo test -p magpie --all-features --locked --no-fail-fast
MAGPIE_TEST_BACKENDS=cluster MAGPIE_TEST_SHARDED=1 MAGPIE_TEST_STORE=mysql MAGPIE_TEST_REDIS_URL="$MAGPIE_TEST_REDIS_CLUSTER_URL" \
  MAGPIE_TEST_NATS_URL="$MAGPIE_TEST_NATS_CLUSTER_URL" MAGPIE_TEST_BUS_OPTIONS="partitions=4&replicas=3" \
  cargo test -p magpie --all-features --locked --no-fail-fast
MAGPIE_TEST_BACKENDS=cluster MAGPIE_TEST_BUS=kafka MAGPIE_TEST_BUS_OPTIONS="partitions=4" \
  cargo test -p magpie --all-features --locked --no-fail-fast
scripts/fuzz.sh 100000
