#!/bin/bash
# Data-parallel DCGAN training on Ascend with an HCCL rank table (the model zoo's launcher).
#   bash scripts/run_distribute_train.sh RANK_TABLE DATASET SAVE [train.py options...]
# Starts one training process per device of this server listed in RANK_TABLE (v1.0 server_list/device layout;
# SERVER_ID picks the server, default the first), each with RANK_TABLE_FILE, RANK_SIZE, RANK_ID and DEVICE_ID set,
# in its own working folder SAVE/device<RANK_ID>/ with its own log (train.log there), and writes their pids to
# SAVE/pids. DATASET is a folder (format detected) or a built-in name (digits, fake). PYTHON selects the interpreter;
# DEVICE_TARGET (default Ascend) is passed to train.py.
set -e
if [ $# -lt 3 ]; then
  echo "usage: bash $0 RANK_TABLE DATASET SAVE [train.py options...]" >&2
  exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python}
RANK_TABLE=$(realpath -m "$1")
DATASET=$2
SAVE_PATH=$(realpath -m "$3")
shift 3

TABLE=$(cd "$ROOT" && "$PYTHON" -m src.run.rank_table "$RANK_TABLE" "$SERVER_ID") || exit 2
RANK_SIZE=$(echo "$TABLE" | head -n 1)

case "$DATASET" in
  digits|fake) DATA_ARGS=(--dataset "$DATASET") ;;
  *) DATA_ARGS=(--dataset auto --data_path "$(realpath -m "$DATASET")") ;;
esac

mkdir -p "$SAVE_PATH"
: > "$SAVE_PATH/pids"
while read -r RANK DEVICE; do
  WORK_DIR="$SAVE_PATH/device$RANK"
  mkdir -p "$WORK_DIR"
  (
    cd "$WORK_DIR"
    export RANK_TABLE_FILE="$RANK_TABLE" RANK_SIZE="$RANK_SIZE" RANK_ID="$RANK" DEVICE_ID="$DEVICE"
    exec "$PYTHON" "$ROOT/train.py" "${DATA_ARGS[@]}" --output_path "$SAVE_PATH" \
      --device_target "${DEVICE_TARGET:-Ascend}" --run_distribute "$@" > "$WORK_DIR/train.log" 2>&1
  ) &
  echo "$!" >> "$SAVE_PATH/pids"
  echo "rank $RANK on device $DEVICE: pid $!, log $WORK_DIR/train.log"
done < <(echo "$TABLE" | tail -n +2)
echo "started $(wc -l < "$SAVE_PATH/pids") of $RANK_SIZE ranks; pids in $SAVE_PATH/pids"
