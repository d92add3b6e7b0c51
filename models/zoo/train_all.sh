#!/bin/sh
# Trains the four shipped models side by side: seg adpc, seg rh, pose adpc,
# pose rh (hrnet_tiny, seed 1). On a CUDA host with Debian's torch built for
# CUDA they run on the GPU, otherwise on the CPU cores. BUDGET (seconds) fixes
# each run's step count from its first 40 steps; the logs print the count, and
# `--steps N` with that N reproduces the run exactly without --budget.
#
#   OUT=models/zoo/.work BUDGET=400 sh models/zoo/train_all.sh
set -eu
OUT=${OUT:-models/zoo/.work}
BUDGET=${BUDGET:-400}
PY=${PY:-/usr/bin/python3}
mkdir -p "$OUT"
$PY -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available())'
nproc
if $PY -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  DEV=cuda THREADS=1 WSEG=${WSEG:-4} WPOSE=${WPOSE:-3}
else
  DEV=cpu THREADS=3 WSEG=1 WPOSE=1
fi
echo "device $DEV"
run() {
  name=$1 workers=$2
  shift 2
  $PY -m models.adpc.train "$@" --seed 1 --batch 16 --device "$DEV" --threads "$THREADS" \
    --workers "$workers" --budget "$BUDGET" --work "$OUT/$name" --out "$OUT/$name.pth" \
    >"$OUT/$name.log" 2>&1 &
}
RUNS=${RUNS:-seg-adpc seg-rh pose-adpc pose-rh}
want() { case " $RUNS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
want seg-adpc && run seg-adpc "$WSEG" --task seg --variant adpc --threshold 0.99
want seg-rh && run seg-rh "$WSEG" --task seg --variant rh
want pose-adpc && run pose-adpc "$WPOSE" --task pose --variant adpc --threshold 0.1 --mask-warmup 0.4
want pose-rh && run pose-rh "$WPOSE" --task pose --variant rh
wait
tail -n 3 "$OUT"/*.log
