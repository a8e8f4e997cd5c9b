#!/usr/bin/env bash
# The one prepared run of a lent GPU machine (issue 13). It needs torch, numpy and Pillow,
# no Ray, no Optuna, no network, and writes 6 files (of the 8 a run may return), all in $OUT:
#   device.txt                   torch, GPU, driver, CPUs, commit
#   session.log                  what every step printed (the proxy runs' last lines)
#   engine_throughput_gpu.json   1. benchmarks/engine_throughput.py: img/s per fig3/table2
#                                   design and lever against the one-model path, targets,
#                                   a profile where a target is missed (BENCH_S, 150 s)
#   fig3_proxy15.tgz             2. fig3 (6 designs x 3 seeds) at proxy15, the engine
#                                   configuration measured best: records/ and proxy_gpu.log
#   table2_proxy15.tgz           3. table2 likewise, if TABLE2_MIN_S (90 s) are left
#   table4_proxy15.tgz           4. table4 (res8/res20/res26) likewise, if 90 s are left
# Every step has its own time limit (timeout kills its whole process group), records are
# written as each design's batch ends, and the tarballs are made whatever happened, so the
# script ends inside TOTAL_S seconds (default 540) with whatever finished.
#
# On the machine (the session's checkout; CIFAR-10 travels as .gpu_data/, 62 MB of the 64):
#   mkdir -p .gpu_data && cp ../shared/data/{cifar10-jpeg-q75.npz,prepare_cifar10.py} .gpu_data/
#   echo /.gpu_data/ >> .git/info/exclude
#   run(command="bash benchmarks/gpu_session.sh", timeout_s=580, carry=[".gpu_data"])
# `bash benchmarks/gpu_session.sh dry` runs the same steps on the CPU on synthetic data
# (about a minute; tests/test_gpu_session.py).
set -u
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}  # the GPU machines' python3 holds torch
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
T0=$(date +%s)
RUNS=/tmp/igc-runs-$$
if [ "${1:-gpu}" = dry ]; then
  TOTAL_S=${TOTAL_S:-300}; BENCH_S=${BENCH_S:-40}; TABLE2_MIN_S=${TABLE2_MIN_S:-20}
  DEVICE=cpu; DATASET=synthetic; DATA=$OUT/none; FIDELITY=smoke; SEEDS=0,1
  PRESETS=(fig3:smoke table2:smoke table4:smoke); EXTRA=(--epochs 1)
  BENCH=(--device cpu --tiny --presets smoke --levers dense+graph --seeds 2)
else
  TOTAL_S=${TOTAL_S:-540}; BENCH_S=${BENCH_S:-150}; TABLE2_MIN_S=${TABLE2_MIN_S:-90}
  DEVICE=cuda; DATASET=cifar10; DATA=/tmp/igc-data; FIDELITY=proxy15; SEEDS=0,1,2
  PRESETS=(fig3:fig3 table2:table2 table4:table4); EXTRA=()
  BENCH=(--device cuda)
fi
left() { echo $(( TOTAL_S - ($(date +%s) - T0) )); }
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/session.log"; }

"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
      torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')" \
  > "$OUT/device.txt" 2>&1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
  echo "cpus $(nproc)"; git rev-parse HEAD 2>/dev/null; } >> "$OUT/device.txt"
cat "$OUT/device.txt" >> "$OUT/session.log"
if [ "$DEVICE" = cuda ]; then
  log "preparing CIFAR-10"
  "$PY" .gpu_data/prepare_cifar10.py "$DATA" >> "$OUT/session.log" 2>&1 \
    || { log "no data (.gpu_data/ carried?)"; exit 1; }
fi

log "1. throughput benchmark, $BENCH_S s"
timeout "$BENCH_S" "$PY" -m benchmarks.engine_throughput "${BENCH[@]}" \
  --budget-s $(( BENCH_S - 15 )) --out "$OUT/engine_throughput_gpu.json" \
  >> "$OUT/session.log" 2>&1
log "benchmark exit status $?"

run_preset() {  # run_preset NAME PRESET SECONDS: PRESET's records, as NAME's tarball
  local name=$1 preset=$2 seconds=$3 dir=$RUNS/$1 flags
  flags=$("$PY" -m benchmarks.engine_throughput --choose "$OUT/engine_throughput_gpu.json" \
          --preset "$preset" --within "$seconds" 2>> "$OUT/session.log")
  log "$name: $preset at $FIDELITY, $seconds s, engine flags: $flags"
  mkdir -p "$dir"
  # shellcheck disable=SC2086  # $flags is a list of flags
  timeout "$seconds" "$PY" -m benchmarks.proxy_gpu --preset "$preset" --fidelity "$FIDELITY" \
    "${EXTRA[@]}" --seeds "$SEEDS" --dataset "$DATASET" --data-dir "$DATA" --device "$DEVICE" \
    --run-dir "$dir" --deadline-s $(( seconds - 30 )) $flags > "$dir/proxy_gpu.log" 2>&1
  log "$name exit status $?"
  grep -v '^  ' "$dir/proxy_gpu.log" | tail -4 >> "$OUT/session.log"
  tar czf "$OUT/${name}_proxy15.tgz" -C "$dir" . 2>> "$OUT/session.log"
}

for entry in "${PRESETS[@]}"; do
  name=${entry%%:*}
  if [ "$name" = fig3 ] || [ "$(left)" -ge "$TABLE2_MIN_S" ]; then
    run_preset "$name" "${entry#*:}" $(( $(left) - 10 ))
  else
    log "$name skipped: $(left) s left"
  fi
done
log "done; $(left) s left"
ls -la "$OUT" >> "$OUT/session.log"
