#!/bin/bash
# Generate images with a trained generator (eval.py).
#   bash scripts/run_eval.sh IMG CKPT [DEVICE_TARGET] [eval.py options...]
# IMG: the output directory (generate.png, plus images/ or images.npz with --format png|npz).
# CKPT: a generator_N.ckpt or a run directory (its newest generator). DEVICE_TARGET: CPU (default), GPU or Ascend.
# Options after the positional ones go to eval.py unchanged, e.g. --num_images 10000 --format npz --seed 1.
set -e
PYTHON=${PYTHON:-python}

if [ $# -lt 2 ]; then
  echo "error: usage: bash scripts/run_eval.sh IMG CKPT [DEVICE_TARGET] [eval.py options...]" >&2
  exit 2
fi
# Relative paths are the caller's; resolve them before moving to the repository.
IMG=$(realpath -m "$1")
CKPT=$(realpath -m "$2")
DEVICE_TARGET=CPU
shift 2
if [ $# -gt 0 ] && [[ "$1" != --* ]]; then
  DEVICE_TARGET=$1
  shift
fi
cd "$(dirname "$0")/.."

exec "$PYTHON" eval.py --ckpt_file "$CKPT" --output_path "$IMG" --device_target "$DEVICE_TARGET" "$@"
