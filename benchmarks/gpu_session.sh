#!/usr/bin/env bash
# The one prepared run on a lent GPU machine (torch there; no Ray, no Optuna, no network).
# Carry .gpu_data/ (the CIFAR-10 JPEG copy and its prepare script from ../shared/data):
#   mkdir -p .gpu_data && cp ../shared/data/{cifar10-jpeg-q75.npz,prepare_cifar10.py} .gpu_data/
#   echo /.gpu_data/ >> .git/info/exclude
#   1. the fig3 preset at the proxy fidelity, PROCS trials sharing the GPU (issue 7), seed-major,
#      no trial started after FIG3_DEADLINE_S; its records come back as a tarball
#   2. only with time left: benchmarks/speed.py on the GPU (the H100 table of performance.md)
# Measured 2026-11-26 on an H100: no 30-epoch trial finished in the 400 s (docs/reproduction.md).
# Everything lands in $OUT; each step has its own time limit so one cannot starve the other.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
DATA=/tmp/igc-data
T0=$(date +%s)
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" \
  2>&1 | tee "$OUT/device.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$OUT/device.txt"
nproc >> "$OUT/device.txt"
( time python3 .gpu_data/prepare_cifar10.py "$DATA" ) 2>&1 | tail -4
timeout "${FIG3_S:-400}" python3 benchmarks/proxy_gpu.py --preset fig3 --fidelity proxy \
  --seeds "${FIG3_SEEDS:-0,1,2}" --procs "${PROCS:-6}" --data-dir "$DATA" \
  --run-dir /tmp/fig3-proxy --deadline-s "${FIG3_DEADLINE_S:-240}" 2>&1 | tee "$OUT/fig3_proxy.log"
tar czf "$OUT/fig3_proxy_records.tgz" -C /tmp/fig3-proxy records
LEFT=$(( ${TOTAL_S:-450} - ($(date +%s) - T0) ))
echo "seconds left for speed.py: $LEFT"
if [ "$LEFT" -gt 90 ]; then
  timeout "$LEFT" python3 benchmarks/speed.py --device cuda --budget-s $(( LEFT - 30 )) \
    --out "$OUT/speed_gpu_h100.json" 2>&1 | tail -30 | tee "$OUT/speed_gpu.log"
fi
ls -la "$OUT"
