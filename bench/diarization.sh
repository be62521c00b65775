#!/usr/bin/env bash
# Diarization accuracy and cost, end to end through the `vttiro` binary.
#
#   bash bench/diarization.sh [COUNT] [SEED]
#
# 1. Generates COUNT dialogs (default 20; 2–5 speakers, cycling) with scripts/make_dialogs.py
#    (flite voices plus piper's "joe" when its venv can be set up), transcribes each MP4
#    with `--diarize --format rttm`, and scores the RTTM with `vttiro eval`: DER per dialog,
#    pooled DER (missed / false alarm / confusion) and how often the speaker count is right.
# 2. Scores the pyannote-audio 4.0.7 sample (real telephone speech, two speakers).
# 3. Transcribes the 10-minute benchmark video (bench/compare.sh builds it) with and
#    without --diarize and prints the extra CPU time (user + sys) and wall time; set
#    SKIP_COST=1 to leave this out while the machine is busy.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-20}
SEED=${2:-2026}
THREADS=${THREADS:-2}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vttiro/target}
WORK=${BENCH_DIR:-$HOME/.cache/vttiro/bench}/diarization
mkdir -p "$WORK"

cargo build --release -q -p vttiro-cli -p vttiro-fixtures
VTTIRO=$CARGO_TARGET_DIR/release/vttiro
FIX=$CARGO_TARGET_DIR/release/vttiro-fixtures
export VTTIRO_MODEL_DIR=${VTTIRO_MODEL_DIR:-$HOME/.cache/vttiro/models}
"$VTTIRO" models pull tiny.en >/dev/null
"$VTTIRO" models pull ge2e >/dev/null

PIPER=()
python3 scripts/make_dialogs.py --setup-piper >/dev/null 2>&1 || PIPER=(--no-piper)
DIALOGS=$WORK/dialogs-$SEED-$COUNT${PIPER:+-nopiper}
if [ ! -f "$DIALOGS/.complete" ]; then
  rm -rf "$DIALOGS"
  python3 scripts/make_dialogs.py "$DIALOGS" --count "$COUNT" --seed "$SEED" "${PIPER[@]}" >/dev/null
  touch "$DIALOGS/.complete"
fi

score() { # REF.rttm MEDIA NAME → appends one JSON line to $WORK/scores.jsonl
  local ref=$1 media=$2 name=$3
  "$VTTIRO" transcribe "$media" --threads "$THREADS" --diarize --format rttm \
    -o "$WORK/$name.rttm" >/dev/null 2>"$WORK/$name.log"
  # RTTM file ids differ (the media's stem vs the reference's): score by speaker turns only.
  sed -i "s/^SPEAKER [^ ]*/SPEAKER $(awk 'NR==1{print $2}' "$ref")/" "$WORK/$name.rttm"
  "$VTTIRO" eval --ref "$ref" --hyp "$WORK/$name.rttm" --json | python3 -c '
import json, sys
d = json.load(sys.stdin); d["name"] = sys.argv[1]; print(json.dumps(d))' "$name" >> "$WORK/scores.jsonl"
}

: > "$WORK/scores.jsonl"
for ref in "$DIALOGS"/dialog-*.rttm; do
  stem=${ref%.rttm}
  score "$ref" "$stem.mp4" "$(basename "$stem")"
done
IFS=$'\t' read -r SAMPLE_WAV SAMPLE_RTTM < <("$FIX" pyannote-sample)
score "$SAMPLE_RTTM" "$SAMPLE_WAV" pyannote-sample

python3 - "$WORK/scores.jsonl" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
dialogs = [r for r in rows if r["name"] != "pyannote-sample"]
print(f"{'file':<18} {'DER':>7} {'missed':>7} {'FA':>7} {'conf':>7}  speakers hyp/ref")
for r in rows:
    s = r["stats"]
    print(f"{r['name']:<18} {100*r['der']:6.2f}% {100*r['missed']:6.2f}% {100*r['false_alarm']:6.2f}% "
          f"{100*r['confusion']:6.2f}%  {s['hypothesis_speakers']}/{s['reference_speakers']}")
total = sum(r["stats"]["total_ms"] for r in dialogs)
part = lambda k: 100 * sum(r["stats"][k] for r in dialogs) / total
pooled = part("missed_ms") + part("false_alarm_ms") + part("confusion_ms")
right = sum(r["stats"]["hypothesis_speakers"] == r["stats"]["reference_speakers"] for r in dialogs)
print(f"dialogs: pooled DER {pooled:.2f}% (missed {part('missed_ms'):.2f}%, false alarm "
      f"{part('false_alarm_ms'):.2f}%, confusion {part('confusion_ms'):.2f}%), "
      f"mean DER {100*sum(r['der'] for r in dialogs)/len(dialogs):.2f}%, "
      f"speaker count right {right}/{len(dialogs)} ({100*right/len(dialogs):.0f}%)")
EOF

VIDEO=${BENCH_DIR:-$HOME/.cache/vttiro/bench}/speech-10min.mp4
if [ -n "${SKIP_COST:-}" ]; then
  echo "cost measurement skipped (SKIP_COST is set)"
elif [ -s "$VIDEO" ]; then
  cost() { # prints "cpu_s wall_s"
    /usr/bin/time -f '%U %S %e' -o "$WORK/time.txt" "$VTTIRO" transcribe "$VIDEO" \
      --threads "$THREADS" --format json -o "$WORK/10min.json" "$@" >/dev/null 2>&1
    awk '{printf "%.2f %.2f\n", $1 + $2, $3}' "$WORK/time.txt"
  }
  read -r plain_cpu plain_wall < <(cost)
  read -r diar_cpu diar_wall < <(cost --diarize)
  python3 -c "
p, d, pw, dw = $plain_cpu, $diar_cpu, $plain_wall, $diar_wall
print(f'10-min video, {$THREADS} threads: CPU {p:.1f} s -> {d:.1f} s with --diarize (+{100*(d-p)/p:.1f}%), '
      f'wall {pw:.1f} s -> {dw:.1f} s (+{100*(dw-pw)/pw:.1f}%)')"
else
  echo "no $VIDEO: run bench/compare.sh once to build it, then rerun for the cost figure"
fi
