#!/usr/bin/env bash
# The prepared accelerator check (issue 10): accuracy on the device for every
# method, then the GPU figures; results in the folder given (default: $OUT, the
# device tool's output folder). About 5-8 minutes on an H100/H200.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]
#
# Needs jax with its CUDA plugin and NumPy (the GPU image has both); torch and
# torchmetrics are timed where importable. Nothing is installed.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-benchmarks/results/gpu-run}}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv > "$out/nvidia-smi.csv" 2>&1 || true
timeout 480 python benchmarks/gpu_check.py --out "$out" 2>&1 | tee "$out/gpu_check.log"
exit "${PIPESTATUS[0]}"
