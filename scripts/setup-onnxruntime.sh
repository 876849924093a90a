#!/usr/bin/env bash
# Installs ONNX Runtime's shared library from the PyPI wheel `onnxruntime` into
# vendor-runtime/ (git-ignored), where sluice finds it. Idempotent: does nothing
# when the library is already there. The version matches the `ort` crate's API level.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=1.31.1
dest="vendor-runtime/onnxruntime-$VERSION"
lib="$dest/libonnxruntime.so.$VERSION"
if [ -f "$lib" ]; then
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "Installing ONNX Runtime $VERSION from PyPI into $dest ..." >&2
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --dest "$tmp" "onnxruntime==$VERSION"
wheel=$(ls "$tmp"/onnxruntime-*.whl)
mkdir -p "$dest"
python3 - "$wheel" "$dest" "$VERSION" <<'PY'
import pathlib, sys, zipfile
wheel, dest, version = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
wanted = f"onnxruntime/capi/libonnxruntime.so.{version}"
with zipfile.ZipFile(wheel) as z:
    (dest / f"libonnxruntime.so.{version}").write_bytes(z.read(wanted))
PY
ln -sf "libonnxruntime.so.$VERSION" "$dest/libonnxruntime.so"
echo "ONNX Runtime $VERSION: $dest/libonnxruntime.so" >&2
