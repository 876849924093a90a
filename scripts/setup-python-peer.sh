#!/usr/bin/env bash
# Installs what ../shared/peers/python_kafka_scorer.py (the Python Kafka scoring service the
# Kafka benchmark compares sluice with) needs, from PyPI, into .venv/ (git-ignored).
# Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES="confluent-kafka==2.16.1 onnxruntime==1.31.1 numpy==2.4.6"
if [ -x .venv/bin/python ] && [ "$(cat .venv/.peer 2>/dev/null)" = "$PACKAGES" ]; then
  exit 0
fi
echo "Installing the Python peer's packages ($PACKAGES) into .venv ..." >&2
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check $PACKAGES
echo "$PACKAGES" > .venv/.peer
