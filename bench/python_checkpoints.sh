#!/usr/bin/env bash
# What per-chunk checkpoints cost in Python, against the CLI in the same run:
#   bash bench/python_checkpoints.sh [VENV]
# VENV has the wheel installed (default: a fresh one from scripts/build-wheel.sh). The
# input is about 4.5 minutes of the pinned LibriVox and JFK speech; the model tiny.en.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vttiro/target}
cargo build --release -q -p vttiro-fixtures
FIX=$CARGO_TARGET_DIR/release/vttiro-fixtures
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
VENV=${1:-}
if [ -z "$VENV" ]; then
  VENV=$WORK/venv
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "$(bash scripts/build-wheel.sh)"
fi
export VTTIRO_MODEL_DIR
VTTIRO_MODEL_DIR=$(dirname "$("$FIX" tiny-en-model)")
sox -n -r 16000 -c 1 -b 16 "$WORK/pause.wav" trim 0 1.5
parts=()
for _ in 1 2 3 4 5 6; do
  parts+=("$("$FIX" jfk)" "$WORK/pause.wav")
  while IFS=$'\t' read -r wav _; do parts+=("$wav" "$WORK/pause.wav"); done < <("$FIX" librivox)
done
sox "${parts[@]}" "$WORK/long.wav"
echo "input: $(soxi -D "$WORK/long.wav") s"
start=$(date +%s.%N)
"$VENV/bin/vttiro" transcribe "$WORK/long.wav" --model tiny.en -o "$WORK/cli.vtt" 2>/dev/null
echo "cli: $(echo "$(date +%s.%N) - $start" | bc) s"
"$VENV/bin/python" - "$WORK/long.wav" "$WORK" <<'PY'
import sys, time, vttiro
media, work = sys.argv[1], sys.argv[2]
vttiro.transcribe(media, model="tiny.en")  # loads the model once, as a notebook would
for every in (None, 30, 60, 180):
    kwargs = {} if every is None else {"checkpoint_dir": f"{work}/ckpt-{every}", "checkpoint_every": every}
    started = time.monotonic()
    t = vttiro.transcribe(media, model="tiny.en", **kwargs)
    label = "no checkpoints" if every is None else f"checkpoint_every={every}"
    print(f"python {label}: {time.monotonic() - started:.2f} s ({t.chunks} chunks)")
PY
