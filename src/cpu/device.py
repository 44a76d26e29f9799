"""Device and process setup: the one Python module that reads or sets the environment variables MindSpore and
oneDNN act on (ONEDNN_MAX_CPU_ISA, MS_ROLE, DEVICE_ID, MS_NODE_TIMEOUT). Two more are read where they are used:
CXX, the compiler of the project's CPU kernels (src/cpu/kernels/__init__.py), and DCGAN_CPU_THREADS, the kernels'
thread count, by their C++ runtime (src/cpu/kernels/dnnl_runtime.h).

oneDNN (MindSpore's CPU convolution library) picks a slow reference kernel for NCHW fp32 convolutions on CPUs with
AVX-512 unless its instruction set is capped at AVX2 (measured on a 2-core Xeon at B=128, 32 px: 27 s -> 0.69 s
per step for a narrow DCGAN). oneDNN reads the cap once, when MindSpore first runs a kernel, so
`prepare_cpu_environment` must run before MindSpore is imported. The project's own convolution kernels
(src/cpu/kernels) avoid that path and run best without the cap.
"""
import contextlib
import os
import sys
import tempfile

from src.errors import UserError

ONEDNN_ISA_VARIABLE = "ONEDNN_MAX_CPU_ISA"

# Rank 0 alone saves checkpoints, measures quality (the first time it trains the quality classifier) and renders
# the report while the other workers wait for it in the next all-reduce. On CPU a worker gives up on a collective
# after MS_NODE_TIMEOUT seconds (30 by default) and the job ends; so workers wait at least half an hour. msrun's
# scheduler keeps the user's MS_NODE_TIMEOUT: it is how soon the job ends after a worker dies.
MIN_COLLECTIVE_TIMEOUT_S = 1800


def worker_collective_timeout(setting):
    """MS_NODE_TIMEOUT for a worker: the user's if longer (negative: no limit), else MIN_COLLECTIVE_TIMEOUT_S."""
    try:
        seconds = int(setting)
    except ValueError:
        seconds = 0
    return setting if seconds < 0 or seconds > MIN_COLLECTIVE_TIMEOUT_S else str(MIN_COLLECTIVE_TIMEOUT_S)


def msrun_role():
    """MS_WORKER or MS_SCHED in a process that msrun started (MindSpore's dynamic cluster), else None."""
    return os.environ.get("MS_ROLE")


def prepare_cpu_environment(device_target, fast_cpu="off"):
    """Choose oneDNN's instruction-set cap for CPU runs (unless the user set it). Returns a sentence for the log.

    fast_cpu="on" (train.py, bench/): if the project's oneDNN convolution kernels (src/cpu/kernels) build, every
    convolution of G and D runs through them, in oneDNN's blocked layouts at the CPU's full instruction set, so no
    cap is set. Otherwise (eval/export/verify, --fast_cpu off, or no compiler) MindSpore's own NCHW convolutions
    run, and they need the AVX2 cap.
    """
    if device_target != "CPU":
        return None
    if ONEDNN_ISA_VARIABLE in os.environ:
        return f"{ONEDNN_ISA_VARIABLE}={os.environ[ONEDNN_ISA_VARIABLE]} (set by you)"
    if "mindspore" in sys.modules:
        return f"{ONEDNN_ISA_VARIABLE} not set: MindSpore was already imported, CPU convolutions may be slow"
    if fast_cpu == "on":
        from src.cpu.kernels import library
        if library():
            return "fast CPU convolutions: oneDNN kernels of src/cpu/kernels at the CPU's full instruction set"
    os.environ[ONEDNN_ISA_VARIABLE] = "AVX2"
    return f"{ONEDNN_ISA_VARIABLE}=AVX2 set for fast CPU convolutions (set it yourself to override)"


def set_device(device_target, device_id=0, mode="graph", distributed=False):
    """Select the device and execution mode; an unavailable device is a UserError, not a traceback.

    In a distributed run the launcher chooses the device: the rank-table launcher exports DEVICE_ID, and under
    msrun MindSpore assigns each worker its local rank when no id is given.
    """
    import mindspore as ms

    if distributed:
        device_id = int(os.environ["DEVICE_ID"]) if os.environ.get("DEVICE_ID", "").isdigit() else None
        if msrun_role() == "MS_WORKER":
            os.environ["MS_NODE_TIMEOUT"] = worker_collective_timeout(os.environ.get("MS_NODE_TIMEOUT", ""))
    target_and_id = (device_target,) if device_id is None else (device_target, device_id)

    ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
    with captured_stderr() as log:
        try:
            ms.set_device(*target_and_id)
            failure = None
        except (RuntimeError, ValueError) as error:
            failure = str(error).splitlines()[0]
    if failure:
        # MindSpore has also logged a page about missing CUDA/CANN libraries: the one line below says it all.
        raise UserError(f"device target {device_target} is not available in this MindSpore installation "
                        f"({failure})")
    sys.stderr.write("".join(log))


def start_device(device_target, device_id=0):
    """Set-up of the tools that run MindSpore's plain layers (eval, export, infer, verify): the CPU environment
    first, then the device, in graph mode. Call it before importing MindSpore."""
    prepare_cpu_environment(device_target)
    set_device(device_target, device_id, "graph")


@contextlib.contextmanager
def captured_stderr():
    """Capture what is written to file descriptor 2 (MindSpore's C++ and Python logs); yields a list that holds
    the captured text once the block ends."""
    captured = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            captured.append(capture.read())
