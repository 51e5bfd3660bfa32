#!/usr/bin/env bash
# Protocol A of the ICPR 2020 reproduction on a GPU machine: L1, L2 and L3 trained side by side
# (one process each, sharing the GPU), each clustering its evaluated epochs in background worker
# processes. Needs only python3 with torch (CUDA), numpy, scipy, scikit-learn, numba, typer, rich
# and threadpoolctl; kfree runs from this checkout (PYTHONPATH=src), nothing is installed.
#
#   bash reproductions/icpr2020/protocol_a_gpu.sh CIFAR_DIR RUNS_DIR [LOG_DIR]
#
# CIFAR_DIR holds cifar10_jpeg.tar (or .tar.gz) + cifar10_manifest.csv (or .csv.gz), or the
# official cifar-10-batches-py. Environment: SEED (0), EPOCHS (100), EVAL_FIRST (20), EVAL_EVERY (5),
# WORKERS (eval processes per loss, 4), TIME_LIMIT (seconds for training, default none: a run
# stopped by it resumes from its last epoch checkpoint when started again).
set -euo pipefail
CIFAR=${1:?CIFAR_DIR}
RUNS=${2:?RUNS_DIR}
LOGS=${3:-$RUNS}
SEED=${SEED:-0} EPOCHS=${EPOCHS:-100} EVAL_FIRST=${EVAL_FIRST:-20} EVAL_EVERY=${EVAL_EVERY:-5} WORKERS=${WORKERS:-4}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
export PYTHONPATH="$HERE/src${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
mkdir -p "$RUNS" "$LOGS"

# compressed copies (what travels to a remote machine) are unpacked beside the runs
if [[ -f "$CIFAR/cifar10_jpeg.tar.gz" ]]; then
  mkdir -p "$RUNS/.cifar10"
  gunzip -c "$CIFAR/cifar10_jpeg.tar.gz" > "$RUNS/.cifar10/cifar10_jpeg.tar"
  gunzip -c "$CIFAR/cifar10_manifest.csv.gz" > "$RUNS/.cifar10/cifar10_manifest.csv"
  CIFAR="$RUNS/.cifar10"
fi
export KFREE_CIFAR10="$CIFAR"

python3 - <<'PY'
import time, torch, numba, sklearn
from kfree_reproductions.icpr2020.cifar import load_cifar10
t = time.time()
for split in ("train", "test"):  # decode once into the cache, before three processes want it
    X, y = load_cifar10(split=split)
    print(split, X.shape, f"{time.time() - t:.1f} s")
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-", "numba", numba.__version__,
      "sklearn", sklearn.__version__)
PY

run() {
  ${TIME_LIMIT:+timeout --signal=TERM "$TIME_LIMIT"} python3 -m kfree -v experiment icpr2020 --protocol A \
    --loss "$1" --seeds "$SEED" --epochs "$EPOCHS" --eval-first "$EVAL_FIRST" --eval-every "$EVAL_EVERY" \
    --eval-workers "$WORKERS" --no-progress --out "$RUNS" > "$LOGS/protocol_a_$1_s$SEED.log" 2>&1
}
pids=()
for loss in l1 l2 l3; do run "$loss" & pids+=($!); done
status=0
for p in "${pids[@]}"; do wait "$p" || status=$?; done
echo "training processes done (last non-zero status: $status)"
