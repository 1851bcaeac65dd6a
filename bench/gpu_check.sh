#!/usr/bin/env bash
# The prepared GPU check: one command, under 8 minutes on one GPU, results under $OUT.
#   bash bench/gpu_check.sh            # on the device machine: results in $OUT (or ./gpu_check_out)
#   HR_JAX_GPU_CHECK_INSTALL=0 HR_JAX_GPU_CHECK_ARGS="--preset tiny --seconds 4 --parity-size tiny" \
#     bash bench/gpu_check.sh          # CPU smoke run, nothing installed
#
# The GPU image already has JAX with CUDA, flax, orbax, transformers and torch. So this installs hr_jax
# with --no-deps, then only the runtime requirements the image lacks (the small audio and metric
# packages: `python -m bench.gpu_env missing`), under constraints pinning the installed JAX, jaxlib,
# CUDA plugins and torch (`python -m bench.gpu_env constraints`): never a second JAX.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_check_out}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1

if [ "${HR_JAX_GPU_CHECK_INSTALL:-1}" = 1 ]; then
  python -m pip install -q --no-deps -e .
  python -m bench.gpu_env constraints >"$out/constraints.txt"
  python -m bench.gpu_env missing >"$out/missing.txt"
  if [ -s "$out/missing.txt" ]; then
    echo "gpu_check: installing what the image lacks: $(tr '\n' ' ' <"$out/missing.txt")"
    python -m pip install -q -c "$out/constraints.txt" -r "$out/missing.txt"
  fi
  python -c "import jax; print('gpu_check: jax', jax.__version__, jax.devices())" | tee "$out/jax_devices.txt"
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$out/nvidia_smi.csv" 2>/dev/null || true
# shellcheck disable=SC2086
python -m bench.gpu_check --out "$out" ${HR_JAX_GPU_CHECK_ARGS:-} 2>&1 | tee "$out/gpu_check.log"
