#!/usr/bin/env bash
# The prepared GPU check (issue 11): one command, under 8 minutes on one GPU, results under $OUT.
#   bash bench/gpu_check.sh            # on the device machine: results in $OUT (or ./gpu_check_out)
#   HR_JAX_GPU_CHECK_ARGS="--preset tiny --seconds 4 --parity-size tiny" bash bench/gpu_check.sh   # CPU smoke
# Needs hr_jax with jax[cuda12] installed (and torch for the transformers rows).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_check_out}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$out/nvidia_smi.csv" 2>/dev/null || true
# shellcheck disable=SC2086
python -m bench.gpu_check --out "$out" ${HR_JAX_GPU_CHECK_ARGS:-} 2>&1 | tee "$out/gpu_check.log"
