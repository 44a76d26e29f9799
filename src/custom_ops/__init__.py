"""The project's C++ CPU kernels for MindSpore's ops.Custom (func_type "aot"), built on first use.

`library()` compiles the kernels (dnnl_conv.cc: convolutions, conv_gemm.cc: those with few output pixels as one
matrix product; dnnl_eltwise.cc: LeakyReLU/ReLU; dnnl_runtime.h: what they share) with g++ into one shared object,
against the oneDNN library that MindSpore ships (mindspore/lib/libdnnl.so.3; no headers needed: dnnl_api.h declares
what is used), in a cache directory (~/.cache/dcgan/custom_ops) keyed by the sources, the library and the compiler,
and returns the path of the shared object. It does not import MindSpore, so src/device.py can ask for it
before MindSpore is imported (oneDNN's CPU instruction-set cap must be chosen then). When anything fails (no g++,
no libdnnl.so.3, a compile error, a oneDNN that is not 3.x with the THREADPOOL runtime) it logs one line and returns
None, and the callers keep MindSpore's plain layers.
"""
import ctypes
import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile

log = logging.getLogger(__name__)

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELS = ("dnnl_conv.cc", "conv_gemm.cc", "dnnl_eltwise.cc")
SOURCES = KERNELS + ("conv_gemm.h", "dnnl_runtime.h", "dnnl_api.h")
ONEDNN_THREADPOOL_RUNTIME = 8  # dnnl_version()->cpu_runtime of MindSpore's build (DNNL_RUNTIME_THREADPOOL)

_result = {}


def mindspore_lib_dir():
    """mindspore/lib, found without importing MindSpore; None if MindSpore is not installed."""
    spec = importlib.util.find_spec("mindspore")
    if spec is None or not spec.origin:
        return None
    return os.path.join(os.path.dirname(spec.origin), "lib")


def cache_dir():
    return os.path.join(os.path.expanduser("~"), ".cache", "dcgan", "custom_ops")


def _build():
    """(path, None) or (None, reason)."""
    if not sys.platform.startswith("linux"):
        return None, "not Linux"
    lib_dir = mindspore_lib_dir()
    dnnl = lib_dir and os.path.join(lib_dir, "libdnnl.so.3")
    if not dnnl or not os.path.exists(dnnl):
        return None, "MindSpore's libdnnl.so.3 not found"
    cxx = shutil.which("g++")
    if not cxx:
        return None, "no C++ compiler (g++) on PATH"
    try:
        version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as error:
        return None, f"{cxx} does not run ({error})"
    key = hashlib.sha256()
    for name in SOURCES:
        with open(os.path.join(HERE, name), "rb") as f:
            key.update(f.read())
    stat = os.stat(dnnl)
    key.update(f"{os.path.realpath(dnnl)}|{stat.st_size}|{stat.st_mtime_ns}|{version}".encode())
    out_dir = os.path.join(cache_dir(), key.hexdigest()[:16])
    target = os.path.join(out_dir, "dnnl_kernels.so")
    if not os.path.exists(target):
        try:
            os.makedirs(out_dir, exist_ok=True)
            fd, tmp = tempfile.mkstemp(suffix=".so", dir=out_dir)
            os.close(fd)
        except OSError as error:
            return None, f"cannot write the build cache {out_dir} ({error})"
        cmd = [cxx, "-std=c++17", "-O2", "-shared", "-fPIC", "-pthread", "-o", tmp,
               *[os.path.join(HERE, name) for name in KERNELS], dnnl, f"-Wl,-rpath,{lib_dir}", "-Wl,--no-undefined"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as error:
            done = None
            failure = str(error)
        if done is None or done.returncode != 0:
            os.unlink(tmp)
            if done is not None:
                lines = (done.stderr or done.stdout).strip().splitlines()
                failure = lines[0] if lines else f"exit status {done.returncode}"
            return None, f"compiling the kernels failed: {failure}"
        os.replace(tmp, target)  # atomic: concurrent processes never load a half-written file
    try:
        so = ctypes.CDLL(target)
        info = (ctypes.c_int * 4)()
        so.DnnlConvInfo(info)
    except (OSError, AttributeError) as error:
        return None, f"cannot load {target} ({error})"
    if info[0] != 3 or info[3] != ONEDNN_THREADPOOL_RUNTIME:
        return None, f"MindSpore's oneDNN is {info[0]}.{info[1]}.{info[2]} with CPU runtime {info[3]}, " \
                     f"not 3.x with the THREADPOOL runtime ({ONEDNN_THREADPOOL_RUNTIME})"
    return target, None


def library():
    """Path of the compiled kernels' shared object, or None (logged once, with the reason) if unavailable."""
    if "path" not in _result:
        try:
            path, reason = _build()
        except Exception as error:  # a broken build must never stop training: the plain layers still work
            path, reason = None, f"{type(error).__name__}: {error}"
        _result["path"] = path
        if path is None:
            log.warning("fast CPU convolutions unavailable (%s): using MindSpore's convolutions", reason)
    return _result["path"]


def dnnl_version():
    """(major, minor, patch, cpu_runtime) of the oneDNN the kernels run on, or None."""
    path = library()
    if path is None:
        return None
    info = (ctypes.c_int * 4)()
    ctypes.CDLL(path).DnnlConvInfo(info)
    return tuple(info)
