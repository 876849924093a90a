#!/usr/bin/env bash
# Installs what the examples' training scripts need (scikit-learn, skl2onnx, onnx,
# onnxruntime, numpy; matplotlib for the retraining demo's picture), from PyPI, into
# .venv-train/ (git-ignored): the tests train a small
# house-price model from a dataset folder the pipeline wrote. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES="scikit-learn==1.7.2 skl2onnx==1.20.0 onnx==1.23.2 onnxruntime==1.31.1 numpy==2.4.6 matplotlib==3.10.7"
if [ -x .venv-train/bin/python ] && [ "$(cat .venv-train/.packages 2>/dev/null)" = "$PACKAGES" ]; then
  exit 0
fi
echo "Installing the training scripts' packages ($PACKAGES) into .venv-train ..." >&2
python3 -m venv .venv-train
.venv-train/bin/python -m pip install --quiet --disable-pip-version-check $PACKAGES
echo "$PACKAGES" > .venv-train/.packages
