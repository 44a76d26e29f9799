#!/bin/bash
# Data-parallel DCGAN training with msrun (MindSpore's launcher): MCCL on CPU, NCCL on GPU, HCCL on Ascend.
#   bash scripts/run_distribute_train_msrun.sh WORKERS DATASET SAVE [DEVICE_TARGET] [train.py options...]
# WORKERS is the total number of workers in the job. DATASET is a folder (format detected) or a built-in name
# (digits, fake). Several nodes: run the script once per node with the same WORKERS and, in the environment,
#   NODES        number of nodes (default 1); each node starts WORKERS / NODES workers (LOCAL_WORKERS overrides)
#   NODE_RANK    this node's rank, 0..NODES-1 (default 0)
#   MASTER_ADDR  address of node 0 (default 127.0.0.1);  MASTER_PORT  its port (default 8118)
# Logs: SAVE/msrun_logs/worker_<rank>.log (msrun's) and SAVE/train*.log (the trainer's, one per rank).
# DCGAN_CPU_THREADS: threads of each worker's CPU kernels (default: this node's cores / its workers).
# PYTHON selects the interpreter (default: the python on PATH); msrun starts every worker with `python` from PATH,
# so the script puts that interpreter's directory first on PATH.
set -e
if [ $# -lt 3 ]; then
  echo "usage: bash $0 WORKERS DATASET SAVE [DEVICE_TARGET] [train.py options...]" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
WORKERS=$1
DATASET=$2
SAVE_PATH=$3
DEVICE_TARGET=${4:-CPU}
shift $(( $# < 4 ? $# : 4 ))

case "$WORKERS" in ''|*[!0-9]*|0) echo "error: WORKERS must be a positive integer, not '$WORKERS'" >&2; exit 2 ;; esac
NODES=${NODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-8118}
if [ -z "$LOCAL_WORKERS" ]; then
  if [ $(( WORKERS % NODES )) -ne 0 ]; then
    echo "error: WORKERS ($WORKERS) is not a multiple of NODES ($NODES); set LOCAL_WORKERS for this node" >&2
    exit 2
  fi
  LOCAL_WORKERS=$(( WORKERS / NODES ))
fi

# The project's CPU kernels use a thread per core in each worker; share this node's cores among its workers.
CORES=$(nproc 2>/dev/null || echo 1)
export DCGAN_CPU_THREADS=${DCGAN_CPU_THREADS:-$(( CORES / LOCAL_WORKERS > 0 ? CORES / LOCAL_WORKERS : 1 ))}

PYTHON=$(command -v "${PYTHON:-python}") || { echo "error: no python interpreter found" >&2; exit 2; }
export PATH="$(dirname "$PYTHON"):$PATH"
MSRUN="$(dirname "$PYTHON")/msrun"
[ -x "$MSRUN" ] || MSRUN=msrun

case "$DATASET" in
  digits|fake) DATA_ARGS=(--dataset "$DATASET") ;;
  *) DATA_ARGS=(--dataset auto --data_path "$DATASET") ;;
esac

LOG_DIR="$SAVE_PATH/msrun_logs/node_$NODE_RANK"
mkdir -p "$LOG_DIR"
set +e
"$MSRUN" --worker_num="$WORKERS" --local_worker_num="$LOCAL_WORKERS" --master_addr="$MASTER_ADDR" \
  --master_port="$MASTER_PORT" --node_rank="$NODE_RANK" --log_dir="$LOG_DIR" \
  --join=True --cluster_time_out="${CLUSTER_TIME_OUT:-300}" \
  train.py "${DATA_ARGS[@]}" --output_path "$SAVE_PATH" --device_target "$DEVICE_TARGET" --run_distribute "$@" \
  2> "$LOG_DIR/msrun.stderr"
STATUS=$?
set -e
if [ $STATUS -ne 0 ]; then
  # msrun stops every worker once one fails; say so in one line instead of msrun's traceback.
  REASON=$(grep -h "^error: " "$LOG_DIR"/worker_*.log 2>/dev/null | head -n 1)
  echo "error: the distributed job stopped (msrun exit $STATUS)${REASON:+: ${REASON#error: }}; a worker failed or was killed, see $LOG_DIR/worker_*.log and $SAVE_PATH/train*.log" >&2
  [ -n "$REASON" ] && exit 2
  exit 1
fi
echo "distributed run finished: $SAVE_PATH"
