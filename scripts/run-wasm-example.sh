#!/usr/bin/env bash
# Builds the example WebAssembly plugins (plugins/wasm) and mediaflow, puts the plugins in a
# plugin directory, and runs workflows/story-desk.yaml with them on the default SQLite store.
#   ./scripts/run-wasm-example.sh [mediaflow run options…]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

target=${CARGO_TARGET_DIR:-target}
cargo build --release -p mediaflow-cli
cargo build --release --target wasm32-wasip2 --manifest-path plugins/wasm/Cargo.toml \
  --target-dir "$target/wasm-guests"
plugins="$target/wasm-plugins"
mkdir -p "$plugins"
cp "$target"/wasm-guests/wasm32-wasip2/release/{ap_headline,keywords,profanity}.wasm "$plugins/"
export MEDIAFLOW_PLUGINS_DIR="$plugins${MEDIAFLOW_PLUGINS_DIR:+:$MEDIAFLOW_PLUGINS_DIR}"
"$target/release/mediaflow" validate workflows/story-desk.yaml
"$target/release/mediaflow" run workflows/story-desk.yaml "$@"
