#!/usr/bin/env bash
# Installs and starts what mediaflow needs on a Debian/Ubuntu machine. Safe to run again:
# it only installs what is missing. Sourced by run-example.sh and test.sh.
#   MEDIAFLOW_NEED_POSTGRES=1  also make sure PostgreSQL runs (the test suite needs it)
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    as_root apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@"
}

if ! command -v cargo >/dev/null 2>&1; then
  echo "mediaflow is built with Rust: install it with rustup (https://rustup.rs), then run this again." >&2
  exit 1
fi

missing=()
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
# The native plugins build llama.cpp and whisper.cpp: cmake, and clang for bindgen.
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v clang >/dev/null 2>&1 || missing+=(clang)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || ls /usr/lib/*/libclang*.so* >/dev/null 2>&1 || missing+=(libclang-dev)
# Speech for the ASR tests and the podcast example: espeak-ng speaks, sox and lame encode
# (FLAC, Ogg/Vorbis, AIFF, MP3).
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
command -v sox >/dev/null 2>&1 || missing+=(sox)
command -v lame >/dev/null 2>&1 || missing+=(lame)
if command -v dpkg-query >/dev/null 2>&1 && ! dpkg-query -W -f='${Status}' libsox-fmt-all 2>/dev/null | grep -q installed; then
  missing+=(libsox-fmt-all)
fi
# `mediaflow models pull` downloads wheels with pip; the tests' reference implementations
# (onnxruntime, VADER) live in a venv.
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
# The web view's test drives headless Chromium through ChromeDriver.
if [ "${MEDIAFLOW_NEED_POSTGRES:-0}" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || [ -x /usr/lib/chromium/chromedriver ] || missing+=(chromium-driver)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  apt_install "${missing[@]}"
fi

# WebAssembly plugins (the examples, the SDK, the tests' hostile plugins) are components
# for wasm32-wasip2.
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx wasm32-wasip2; then
  echo "installing the wasm32-wasip2 Rust target"
  rustup target add wasm32-wasip2
fi

if [ "${MEDIAFLOW_NEED_POSTGRES:-0}" = 1 ] && [ -z "${MEDIAFLOW_TEST_POSTGRES_URL:-}" ]; then
  if ! command -v pg_isready >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_isready >/dev/null 2>&1; then
    echo "installing PostgreSQL"
    apt_install postgresql postgresql-client
  fi
  pg_isready_bin=$(command -v pg_isready || ls /usr/lib/postgresql/*/bin/pg_isready | head -n1)
  if ! "$pg_isready_bin" -q -h 127.0.0.1 -p 5432; then
    echo "starting PostgreSQL"
    version=$(ls /etc/postgresql | sort -V | tail -n1)
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start \
      || as_root service postgresql start
    for _ in $(seq 1 60); do
      "$pg_isready_bin" -q -h 127.0.0.1 -p 5432 && break
      sleep 0.5
    done
  fi
  if ! "$pg_isready_bin" -q -h 127.0.0.1 -p 5432; then
    echo "PostgreSQL does not answer on 127.0.0.1:5432" >&2
    exit 1
  fi
  # The tests connect as `postgres` over TCP. A stock install wants a password there: give
  # the local superuser one and tell the tests.
  if ! psql "postgres://postgres@127.0.0.1:5432/postgres" -qtAc 'select 1' >/dev/null 2>&1; then
    as_root su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
    export MEDIAFLOW_TEST_POSTGRES_URL="postgres://postgres:postgres@127.0.0.1:5432/postgres"
  fi
fi
