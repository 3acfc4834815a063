#!/usr/bin/env bash
# The main job: builds mediaflow and its LLM plugin, pulls the default model if it is
# missing, and runs a real example workflow on the embedded default store (SQLite in the
# data dir). Installs whatever is missing first.
#   ./scripts/run-example.sh [workflow.yaml] [mediaflow run options…]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

workflow=${1:-workflows/headline-writer.yaml}
shift || true
cargo build --release -p mediaflow-cli -p mediaflow-llm
bin="${CARGO_TARGET_DIR:-target}/release/mediaflow"
"$bin" models pull smollm2-135m-instruct
"$bin" validate "$workflow"
"$bin" run "$workflow" "$@"
