#!/usr/bin/env bash
# The Python package: builds the wheel (scripts/build-wheel.sh: maturin, offline),
# installs it with every extra (`all`) into a fresh virtualenv, then runs the pytest suite
# there, the Colab notebook included (headless, on the CPU). Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vttiro/target}
cargo build --release -q -p vttiro-fixtures
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
WHEEL=$(bash scripts/build-wheel.sh --out "$WORK/dist")
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q --disable-pip-version-check \
  "$WHEEL[all]" -r crates/vttiro-python/tests/requirements.txt
export VTTIRO_FIXTURES_BIN=$CARGO_TARGET_DIR/release/vttiro-fixtures
export VTTIRO_WHEEL=$WHEEL
"$WORK/venv/bin/ruff" check --config crates/vttiro-python/pyproject.toml crates/vttiro-python notebooks
# From the tests' directory, so `import vttiro` is the installed wheel, never the sources.
cd crates/vttiro-python/tests
"$WORK/venv/bin/python" -m pytest -p no:cacheprovider -q -ra "$@"
