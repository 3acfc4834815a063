#!/usr/bin/env bash
# The whole test suite, on SQLite and PostgreSQL, with real models. Installs and starts
# whatever is missing (build tools, PostgreSQL, the models the tests use) first.
#
# Everything is built once: `cargo test --workspace --no-run` compiles every test and
# binary (mediaflow, the plugin processes) with the feature set the tests use, the models
# are pulled with that very `mediaflow`, and `cargo test --workspace` then only runs.
# (`cargo build -p mediaflow-cli` first would resolve other features and compile sqlx,
# wasmtime, jsonschema and both C++ libraries a second time.)
set -euo pipefail
cd "$(dirname "$0")/.."
export MEDIAFLOW_NEED_POSTGRES=1
source scripts/setup.sh

export MEDIAFLOW_MODELS=${MEDIAFLOW_MODELS:-$HOME/.local/share/mediaflow/models}
export MEDIAFLOW_SAMPLES=${MEDIAFLOW_SAMPLES:-$HOME/.local/share/mediaflow/samples}
cargo test --workspace --no-run "$@"
for model in smollm2-135m-instruct qwen2.5-coder-0.5b-instruct whisper-tiny.en whisper-tiny.en-q8_0 whisper-tiny.en-q5_1 silero-vad open-nsfw efficientnet-lite0 minilm-l3 minilm-l6; do
  "${CARGO_TARGET_DIR:-target}/debug/mediaflow" models pull "$model"
done
# Real photos for the image tests, and the Python references (onnxruntime, VADER) the
# parity tests compare against: test-only, in a venv of their own.
scripts/sample-images.sh >/dev/null
scripts/reference-venv.sh >/dev/null

cargo test --workspace "$@"
# The WebAssembly plugins' own unit tests (their logic, compiled natively), and the SDK's.
cargo test --manifest-path plugins/wasm/Cargo.toml "$@"
cargo test --manifest-path sdk/rust/Cargo.toml "$@"
