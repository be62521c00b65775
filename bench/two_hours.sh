#!/usr/bin/env bash
# Peak memory of a full 2-hour transcription: the 10-minute benchmark video (built by
# bench/compare.sh) repeated 12 times into one 2-hour MP4, transcribed end to end with the
# default settings (VAD, beam 5, tiny.en, all cores). Prints wall time, peak RSS and WER
# against the repeated reference. Target: peak RSS under 2 GiB.
#
#   bash bench/two_hours.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vttiro/target}
WORK=${BENCH_DIR:-$HOME/.cache/vttiro/bench}
export VTTIRO_MODEL_DIR=${VTTIRO_MODEL_DIR:-$HOME/.cache/vttiro/models}
VIDEO=$WORK/speech-10min.mp4
REF=$WORK/speech-10min.ref.txt
[ -s "$VIDEO" ] && [ -s "$REF" ] || { echo "run bench/compare.sh first (it builds $VIDEO)" >&2; exit 2; }

cargo build --release -q -p vttiro-cli
VTTIRO=$CARGO_TARGET_DIR/release/vttiro
"$VTTIRO" models pull tiny.en >/dev/null

LONG=$WORK/speech-2h.mp4
if [ ! -s "$LONG" ]; then
  for _ in $(seq 12); do echo "file '$VIDEO'"; done > "$WORK/list12.txt"
  ffmpeg -nostdin -v error -y -f concat -safe 0 -i "$WORK/list12.txt" -c copy "$LONG"
fi
for _ in $(seq 12); do cat "$REF"; echo; done > "$WORK/speech-2h.ref.txt"

/usr/bin/time -f '%e %M' -o "$WORK/time-2h.txt" \
  "$VTTIRO" transcribe "$LONG" --format txt -o "$WORK/vttiro-2h.txt" --no-download
read -r wall kib < "$WORK/time-2h.txt"
wer=$("$VTTIRO" eval wer "$WORK/speech-2h.ref.txt" "$WORK/vttiro-2h.txt")
duration=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$LONG")
printf '2-hour input: %.0f s; wall %s s; peak RSS %.0f MiB; WER %s%%\n' \
  "$duration" "$wall" "$((kib / 1024))" "$wer"
