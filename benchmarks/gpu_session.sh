#!/usr/bin/env bash
# The one prepared run on a lent GPU machine (torch there; no Ray, no Optuna, no network).
# Carry .gpu_data/ (the CIFAR-10 JPEG copy and its prepare script from ../shared/data).
#   1. benchmarks/speed.py on the GPU: fast vs reference path, alone and shared (issue 6)
#   2. the fig3 preset at the proxy fidelity, 4 trials sharing the GPU (issue 7)
# Everything lands in $OUT; each step has its own time limit so one cannot starve the other.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
DATA=/tmp/igc-data
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" \
  2>&1 | tee "$OUT/device.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$OUT/device.txt"
( time python3 .gpu_data/prepare_cifar10.py "$DATA" ) 2>&1 | tail -4
timeout "${SPEED_S:-200}" python3 benchmarks/speed.py --device cuda --budget-s "${SPEED_BUDGET_S:-140}" \
  --out "$OUT/speed_gpu.json" 2>&1 | tee "$OUT/speed_gpu.log"
timeout "${FIG3_S:-330}" python3 benchmarks/proxy_gpu.py --preset fig3 --fidelity proxy \
  --seeds "${FIG3_SEEDS:-0,1}" --procs 4 --data-dir "$DATA" --run-dir /tmp/fig3-proxy \
  --deadline-s "${FIG3_DEADLINE_S:-200}" 2>&1 | tee "$OUT/fig3_proxy.log"
tar czf "$OUT/fig3_proxy_records.tgz" -C /tmp/fig3-proxy records
ls -la "$OUT"
