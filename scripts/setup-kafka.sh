#!/usr/bin/env bash
# Installs the Kafka-API broker the Kafka tests, benchmarks and demos run: tansu, from the
# Rust crate registry, into vendor-kafka/ (about 10 minutes to build on these machines).
# With the `libsql` feature it can keep its topics on disk (SQLite), which the broker-outage
# test needs; `dynostore` gives the in-memory storage the other tests use. Idempotent.
set -euo pipefail

VERSION=0.6.0
FEATURES=dynostore,libsql
DEST="$(cd "$(dirname "$0")/.." && pwd)/vendor-kafka"
STAMP="$VERSION $FEATURES"
if [ -x "$DEST/bin/tansu" ] && [ "$(cat "$DEST/.installed" 2>/dev/null)" = "$STAMP" ]; then
  exit 0
fi
echo "Installing tansu $VERSION ($FEATURES), a Kafka-API broker, from crates.io into $DEST ..." >&2
cargo install tansu --version "$VERSION" --features "$FEATURES" --locked --quiet --root "$DEST"
echo "$STAMP" > "$DEST/.installed"
