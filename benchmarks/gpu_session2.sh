#!/usr/bin/env bash
# The second prepared GPU run of issue 7 (after gpu_session.sh finished no 30-epoch trial in
# 400 s): the step time of three fig3 designs alone on the GPU, deterministic or not
# (gpu_step_time.py), then fig3 at the proxy fidelity shortened to 2 epochs (records named
# proxy-e2), six trials sharing the GPU. Carry .gpu_data/ as for gpu_session.sh. ~5 min.
set -u; export PYTHONUNBUFFERED=1; DATA=/tmp/igc-data; OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
python3 .gpu_data/prepare_cifar10.py "$DATA" >/dev/null
timeout 90 python3 benchmarks/gpu_step_time.py --out "$OUT/step_time_h100.json" 2>&1 \
  | grep -v Warn | tee "$OUT/step_time.log"
timeout 225 python3 benchmarks/proxy_gpu.py --preset fig3 --fidelity proxy --epochs 2 \
  --seeds 0,1,2 --procs 6 --data-dir "$DATA" --run-dir /tmp/fig3-proxy --deadline-s 140 \
  > "$OUT/fig3_proxy_e2.log" 2>&1
tar czf "$OUT/fig3_proxy_e2_records.tgz" -C /tmp/fig3-proxy records
grep -v '^  ' "$OUT/fig3_proxy_e2.log" | tail -25
