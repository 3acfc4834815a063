#!/usr/bin/env bash
# The whole test suite, on SQLite and PostgreSQL. Installs and starts whatever is missing
# (PostgreSQL included) first.
set -euo pipefail
cd "$(dirname "$0")/.."
export MEDIAFLOW_NEED_POSTGRES=1
source scripts/setup.sh

cargo test --workspace "$@"
