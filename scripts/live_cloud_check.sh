#!/usr/bin/env bash
# The manual check of the cloud engines against the real providers (docs/cloud-engines.md).
# Needs network access to the providers and at least one VTTIRO_<PROVIDER>_API_KEY.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vttiro/target}
cargo build --release -q -p vttiro-cli -p vttiro-fixtures
BIN=$CARGO_TARGET_DIR/release
jfk=$("$BIN/vttiro-fixtures" jfk)
out=$(mktemp -d)
"$BIN/vttiro-fixtures" jfk-text > "$out/reference.txt"
failures=0
ran=0

check() { # description, command...
  local what=$1; shift
  if "$@"; then echo "ok    $what"; else echo "FAIL  $what"; failures=$((failures + 1)); fi
}

models_of() {
  case $1 in
    openai) echo "whisper-1 gpt-4o-transcribe gpt-4o-mini-transcribe gpt-4o-transcribe-diarize" ;;
    gemini) echo "gemini-2.5-flash" ;;
    assemblyai) echo "universal-2" ;;
    deepgram) echo "nova-3" ;;
  esac
}

for provider in openai gemini assemblyai deepgram; do
  upper=$(echo "$provider" | tr a-z A-Z)
  key_var="VTTIRO_${upper}_API_KEY"
  key=${!key_var:-}
  if [ -z "$key" ]; then echo "skip  $provider (no $key_var)"; continue; fi
  ran=$((ran + 1))
  for model in $(models_of "$provider"); do
    # No dots in the stem: the output's extension replaces whatever follows the last one.
    stem="$out/$provider-${model//./_}"
    log="$stem.log"
    if ! VTTIRO_LOG=vttiro_cloud=debug "$BIN/vttiro" transcribe "$jfk" --engine "$provider:$model" \
        --diarize --format json,vtt -o "$stem" --log-format json 2> "$log"; then
      echo "FAIL  $provider:$model transcribe (see $log; re-run: $BIN/vttiro transcribe $jfk --engine $provider:$model)"
      failures=$((failures + 1)); continue
    fi
    # Scored from the JSON words: the .txt carries "Speaker 1:" prefixes with --diarize.
    wer=$("$BIN/vttiro" eval --ref "$out/reference.txt" --hyp "$stem.json" --json |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["wer"])') || wer=100
    check "$provider:$model WER $wer% <= 10%" awk "BEGIN { exit !($wer <= 10) }"
    check "$provider:$model usage names the provider and bills 8-12 s" python3 - "$stem.json" "$provider" <<'PY'
import json, sys
usage = json.load(open(sys.argv[1]))["usage"]
sys.exit(0 if usage["provider"] == sys.argv[2] and 8 <= usage["billed_seconds"] <= 12 else 1)
PY
    check "$provider:$model no key in the logs" bash -c "! grep -qF -- \"\$1\" \"\$2\"" _ "$key" "$log"
  done
  status=0
  env "$key_var=wrong-${key:0:4}-key" "$BIN/vttiro" transcribe "$jfk" --engine "$provider" \
    -o "$out/$provider-badkey.vtt" 2> "$out/$provider-badkey.log" || status=$?
  check "$provider wrong key exits 32 with one line" \
    bash -c '[ "$1" -eq 32 ] && [ "$(wc -l < "$2")" -eq 1 ]' _ "$status" "$out/$provider-badkey.log"
done

if [ -n "${VTTIRO_OPENAI_API_KEY:-}" ]; then
  VTTIRO_DEEPGRAM_API_KEY=wrong-key "$BIN/vttiro" transcribe "$jfk" --engine deepgram,openai,local \
    --format json -o "$out/chain.json" 2> "$out/chain.log" || true
  check "deepgram,openai,local falls back to openai" python3 - "$out/chain.json" <<'PY'
import json, sys
usage = json.load(open(sys.argv[1]))["usage"]
sys.exit(0 if usage["provider"] == "openai" and usage["fell_back_from"][0]["code"] == "provider_auth" else 1)
PY
fi

echo "outputs in $out"
if [ "$ran" -eq 0 ]; then echo "error: no provider key set; see docs/cloud-engines.md" >&2; exit 2; fi
[ "$failures" -eq 0 ] || { echo "$failures check(s) failed" >&2; exit 1; }
