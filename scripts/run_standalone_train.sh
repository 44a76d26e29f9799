#!/bin/bash
# Train DCGAN on one device.
#   bash scripts/run_standalone_train.sh                      built-in digits on CPU, run directory ./runs/digits
#   bash scripts/run_standalone_train.sh DATASET_PATH SAVE_PATH [DEVICE_TARGET] [DEVICE_ID] [train.py options...]
# DATASET_PATH is a folder (its format is detected: CIFAR-10 binary, MNIST idx, CelebA, LSUN or an image folder)
# or a built-in name (digits, fake). Options after the positional ones go to train.py unchanged.
set -e
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}

DATASET=${1:-digits}
SAVE_PATH=${2:-./runs/$(basename "$DATASET")}
DEVICE_TARGET=${3:-CPU}
DEVICE_ID=${4:-0}
shift $(( $# < 4 ? $# : 4 ))

case "$DATASET" in
  digits|fake) DATA_ARGS=(--dataset "$DATASET") ;;
  *) DATA_ARGS=(--dataset auto --data_path "$DATASET") ;;
esac

exec "$PYTHON" train.py "${DATA_ARGS[@]}" --output_path "$SAVE_PATH" \
  --device_target "$DEVICE_TARGET" --device_id "$DEVICE_ID" "$@"
