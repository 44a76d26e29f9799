"""Whether this CPU computes bf16 natively, which --amp_level O1/O2 needs on a CPU.

Native bf16 means AVX512-BF16 (AMD Zen 4 and later, Intel Cooper Lake / Sapphire Rapids) or AMX (Intel Sapphire
Rapids and later). Both are asked: the CPU (its /proc/cpuinfo flags) and oneDNN, which the convolutions run on (its
effective instruction set, lowered by ONEDNN_MAX_CPU_ISA). oneDNN would emulate bf16 on an older AVX-512 CPU at a
slowdown, so without native support mixed precision is refused rather than run.
"""
import ctypes

from src.cpu import kernels

CPUINFO = "/proc/cpuinfo"
NATIVE_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo=None):
    """The feature flags of the first CPU in `cpuinfo` (default /proc/cpuinfo), or None when it cannot be read."""
    cpuinfo = cpuinfo or CPUINFO
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return set()


def native_bf16_problem(cpuinfo=None):
    """None when this CPU and oneDNN compute bf16 natively, else why not (one sentence)."""
    cpuinfo = cpuinfo or CPUINFO
    flags = cpu_flags(cpuinfo)
    if flags is not None and not flags & set(NATIVE_FLAGS):
        return (f"this CPU has no native bf16 (neither {' nor '.join(NATIVE_FLAGS)} among its flags in {cpuinfo}); "
                f"train with --amp_level O0 (fp32)")
    library = kernels.library()
    if library is None:
        return ("bf16 runs on the project's CPU kernels, which are unavailable here (see the warning above); "
                "train with --amp_level O0 (fp32)")
    if not ctypes.CDLL(library).DnnlNativeBf16():  # dnnl_conv.cc: oneDNN's effective ISA has the bf16 bit
        return ("oneDNN does not run bf16 natively here (is ONEDNN_MAX_CPU_ISA set below AVX512_CORE_BF16?); "
                "train with --amp_level O0 (fp32)")
    return None

