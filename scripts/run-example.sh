#!/usr/bin/env bash
# The main job: builds mediaflow and runs a real example workflow on the embedded default
# store (SQLite in the data dir). Installs whatever is missing first.
#   ./scripts/run-example.sh [workflow.yaml] [mediaflow run options…]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

workflow=${1:-workflows/morning-brief.yaml}
shift || true
cargo build --release -p mediaflow-cli
bin="${CARGO_TARGET_DIR:-target}/release/mediaflow"
"$bin" validate "$workflow"
"$bin" run "$workflow" "$@"
