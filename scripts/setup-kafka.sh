#!/usr/bin/env bash
# Installs the Kafka-API broker the Kafka tests and demos run: tansu, from the Rust crate
# registry (about 8 minutes to build on these machines). Idempotent.
set -euo pipefail

VERSION=0.6.0
if command -v tansu >/dev/null 2>&1 && tansu --version 2>/dev/null | grep -q "$VERSION"; then
  exit 0
fi
echo "Installing tansu $VERSION (a Kafka-API broker) from crates.io ..." >&2
cargo install tansu --version "$VERSION" --features dynostore --locked --quiet
