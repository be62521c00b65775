#!/usr/bin/env bash
# Fuzzes the WebVTT parser (crates/vttiro-subtitles/fuzz, target parse_webvtt) for a bounded
# time: `scripts/fuzz.sh [SECONDS]`, 60 s by default. A crash is copied into
# crates/vttiro-subtitles/tests/fuzz-regressions/, which the ordinary test suite replays,
# and the script exits non-zero.
#
# Runs on stable Rust: cargo-fuzz only needs nightly for sanitizers (-Zsanitizer), and the
# parser is safe Rust, where AddressSanitizer has nothing to find that a panic would not
# show; libFuzzer's coverage instrumentation and the `fuzzing` cfg are stable flags.
# Overflow checks and debug assertions stay on (cargo-fuzz's default), so arithmetic that
# silently wraps in release builds is reported as a crash.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_TO_RUN=${1:-60}
CARGO_FUZZ_VERSION=0.13.2
CACHE=$HOME/.cache/vttiro
# Outside the clone: the instrumented build must not share (and invalidate) the main target
# dir, and the corpus grows with every run, which is worth keeping but not committing.
TARGET_DIR=$CACHE/target-fuzz
CORPUS=$CACHE/fuzz-corpus/parse_webvtt
FUZZ_DIR=crates/vttiro-subtitles/fuzz
REGRESSIONS=crates/vttiro-subtitles/tests/fuzz-regressions

if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

mkdir -p "$CORPUS"
ARTIFACTS=$(mktemp -d)
trap 'rm -rf "$ARTIFACTS"' EXIT

status=0
# libFuzzer writes new inputs only into the first corpus directory, so the committed seeds
# and regression files are read but never modified. Replaying the regression files first
# means a bug that is still open fails the run within a second.
(
  cd "$FUZZ_DIR"
  cargo fuzz run --sanitizer none --target-dir "$TARGET_DIR" parse_webvtt \
    "$CORPUS" seeds "../tests/fuzz-regressions" -- \
    -max_total_time="$SECONDS_TO_RUN" -timeout=10 -artifact_prefix="$ARTIFACTS/"
) || status=$?
# cargo-fuzz creates its default artifact directory even when told to write elsewhere.
rmdir "$FUZZ_DIR/artifacts/parse_webvtt" "$FUZZ_DIR/artifacts" 2>/dev/null || true

saved=0
for artifact in "$ARTIFACTS"/*; do
  [ -f "$artifact" ] || continue
  duplicate=
  for existing in "$REGRESSIONS"/*; do
    if [ -f "$existing" ] && cmp -s "$artifact" "$existing"; then
      duplicate=$existing
      break
    fi
  done
  if [ -n "$duplicate" ]; then
    echo "fuzz: failing input is already saved as $duplicate" >&2
  else
    cp "$artifact" "$REGRESSIONS/"
    echo "fuzz: saved failing input as $REGRESSIONS/$(basename "$artifact")" >&2
  fi
  saved=$((saved + 1))
done

if [ "$status" -ne 0 ] || [ "$saved" -ne 0 ]; then
  echo "fuzz: parse_webvtt failed (exit $status, $saved failing input(s))" >&2
  exit $((status == 0 ? 1 : status))
fi
echo "fuzz: parse_webvtt survived ${SECONDS_TO_RUN} s"
