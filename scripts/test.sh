#!/usr/bin/env bash
# The full test suite: formatting, lints, then every test in release mode (CTranslate2 is
# a C++ build whose debug flavour is too slow to run Whisper in tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
# Cargo's target dir lives outside the clone so CI and fresh clones reuse the CTranslate2 build.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vttiro/target}
export CMAKE_PARALLEL=${CMAKE_PARALLEL:-$(nproc)}
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings
cargo test --release --workspace
# The whisper.cpp backend is an opt-in feature; build and test it too.
cargo clippy --release -p vttiro-asr -p vttiro-cli --features vttiro-asr/whispercpp,vttiro-cli/whispercpp --all-targets -- -D warnings
cargo test --release -p vttiro-asr --features whispercpp --test whispercpp
cargo test --release -p vttiro-cli --features whispercpp --test cli whispercpp
# ONNX speaker models through tract are an opt-in feature of vttiro-diarize; lint and test it too.
cargo clippy --release -p vttiro-diarize --features onnx --all-targets -- -D warnings
cargo test --release -p vttiro-diarize --features onnx
# The Python wheel (maturin) in a fresh virtualenv: pytest on the API and the Colab
# notebook executed headless.
bash scripts/python.sh
# The WebVTT parser under libFuzzer for a bounded minute (stable Rust, no sanitizer); a crash
# is saved into crates/vttiro-subtitles/tests/fuzz-regressions/ and fails the run.
bash scripts/fuzz.sh 60
