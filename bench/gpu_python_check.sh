#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: what the Colab notebook's setup cell would detect and
# say there, with the wheel from scripts/build-wheel.sh (carried in target/wheels). No
# network is needed: the wheel is unpacked, not installed from an index.
set -u
echo "== nvidia-smi"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "no nvidia-smi"
echo "== CUDA toolkit (needed to build the vttiro-cu12 wheel)"
command -v nvcc && nvcc --version | tail -2 || echo "no nvcc"
ls -d /usr/local/cuda* 2>/dev/null || echo "no /usr/local/cuda*"
echo "== python"
command -v python3 && python3 --version
WHEEL=$(ls -t target/wheels/vttiro-*.whl | head -1)
UNPACKED=$(mktemp -d)
python3 -m zipfile -e "$WHEEL" "$UNPACKED"
echo "== vttiro.colab.detect() with $(basename "$WHEEL")"
PYTHONPATH=$UNPACKED python3 - <<'PY'
import vttiro
from vttiro import colab
env = colab.detect()
print(env)
print(env.describe())
print("device for transcribe():", env.device)
print("backends:", vttiro.backends(), "gpu_available:", vttiro.gpu_available())
PY
echo "== the wheel's command"
PYTHONPATH=$UNPACKED python3 -m vttiro version
